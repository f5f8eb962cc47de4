// Starts Swagger UI on the server's own OpenAPI document. This lives in its
// own file, not inline in the page, so the page's Content-Security-Policy
// can forbid inline scripts.
(function () {
  "use strict";
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.getAttribute("data-schema-url"),
    dom_id: "#swagger-ui",
    deepLinking: true,
    // The bearer token survives a reload (kept in localStorage).
    persistAuthorization: true,
    displayRequestDuration: true,
    filter: true,
    // Swagger UI's default is a badge loaded from an outside validator:
    // nothing may leave the server.
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout"
  });
})();
