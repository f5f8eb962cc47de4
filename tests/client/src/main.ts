// A small frontend-shaped client of the AutoDocs API, typed only by what
// openapi-typescript generated from the live `/api/schema/` (src/schema.d.ts).
// If the document lies about a path, a parameter, a body or a response, this
// file stops compiling under `tsc --strict` or an assertion below fails at
// run time: either way tests/contract/run.sh fails.
//
// Usage: node dist/main.js <base URL>   (e.g. http://127.0.0.1:8000)

import { createHash, randomUUID } from "node:crypto";

import createClient, { type Middleware } from "openapi-fetch";

import type { paths } from "./schema.js";

// Types are taken from operations (path + method + status), not from
// component names, so the client depends only on what a frontend calls.
type MissionDetail =
  paths["/api/missions/{id}/"]["get"]["responses"][200]["content"]["application/json"];
type PlanStep = MissionDetail["plan_steps"][number];
type StepInput = NonNullable<
  NonNullable<
    paths["/api/missions/"]["post"]["requestBody"]
  >["content"]["application/json"]["plan_steps"]
>[number];

/** A failed expectation: the message says what was expected and what came. */
class Mismatch extends Error {}

function check(condition: boolean, message: string, got?: unknown): asserts condition {
  if (!condition) {
    const detail = got === undefined ? "" : `\n  got: ${JSON.stringify(got)}`;
    throw new Mismatch(`${message}${detail}`);
  }
}

function equal<T>(got: T, want: T, what: string): void {
  check(
    JSON.stringify(got) === JSON.stringify(want),
    `${what}: expected ${JSON.stringify(want)}`,
    got,
  );
}

/** The `code` of an error body (`Detail`), if it has one. */
function codeOf(error: unknown): unknown {
  return typeof error === "object" && error !== null && "code" in error
    ? (error as { code: unknown }).code
    : undefined;
}

/** Each step's title and its children's, in order: the shape of a tree. */
interface Shape {
  title: string;
  children: Shape[];
}

function shapeOf(steps: readonly PlanStep[]): Shape[] {
  return steps.map((step) => ({ title: step.title, children: shapeOf(step.children ?? []) }));
}

function shapeOfInput(steps: readonly StepInput[]): Shape[] {
  return steps.map((step) => ({ title: step.title, children: shapeOfInput(step.children ?? []) }));
}

function countSteps(steps: readonly PlanStep[]): number {
  return steps.reduce((n, step) => n + 1 + countSteps(step.children ?? []), 0);
}

function flatten(steps: readonly PlanStep[]): PlanStep[] {
  return steps.flatMap((step) => [step, ...flatten(step.children ?? [])]);
}

async function timed<T>(name: string, run: () => Promise<T>): Promise<T> {
  const started = performance.now();
  const result = await run();
  console.log(`  ok  ${name} (${Math.round(performance.now() - started)} ms)`);
  return result;
}

async function main(baseUrl: string): Promise<void> {
  let access: string | undefined;
  const bearer: Middleware = {
    onRequest({ request }) {
      if (access !== undefined) {
        request.headers.set("Authorization", `Bearer ${access}`);
      }
      return request;
    },
  };
  // The document describes list filters as comma-separated (form style, not
  // exploded), as the server reads them: `?status=pending,paused`.
  const api = createClient<paths>({
    baseUrl,
    querySerializer: { array: { style: "form", explode: false } },
  });
  api.use(bearer);

  await timed("GET /api/health/", async () => {
    const { data, response } = await api.GET("/api/health/");
    equal(response.status, 200, "health status");
    equal(data?.status, "ok", "health body status");
  });

  await timed("anonymous GET /api/missions/ is 401", async () => {
    const { data, error, response } = await api.GET("/api/missions/");
    equal(response.status, 401, "status without a token");
    check(data === undefined, "no data on 401", data);
    equal(codeOf(error), "not_authenticated", "401 code");
  });

  const username = `client_${randomUUID().replaceAll("-", "").slice(0, 12)}`;
  const user = await timed("POST /api/auth/register/", async () => {
    const { data, error, response } = await api.POST("/api/auth/register/", {
      body: {
        username,
        email: `${username}@example.com`,
        password: `correct horse ${randomUUID()}`,
        first_name: "Ada",
      },
    });
    equal(response.status, 201, "register status");
    check(data !== undefined, "register body", error);
    equal(data.user.username, username, "registered username");
    equal(data.user.first_name, "Ada", "registered first_name");
    equal(data.user.is_staff, false, "a new user is not staff");
    check(typeof data.access === "string" && data.access.length > 0, "an access token", data);
    check(typeof data.refresh === "string" && data.refresh.length > 0, "a refresh token", data);
    access = data.access;
    return data.user;
  });

  await timed("GET /api/users/me/", async () => {
    const { data, response } = await api.GET("/api/users/me/");
    equal(response.status, 200, "me status");
    check(data !== undefined, "me body");
    equal(data.id, user.id, "me id");
    equal(data.profile.timezone, "UTC", "default profile timezone");
  });

  await timed("GET /api/missions/ (empty)", async () => {
    const { data, response } = await api.GET("/api/missions/", {
      params: { query: { page: 1, page_size: 10, ordering: ["-created_at", "title"] } },
    });
    equal(response.status, 200, "missions list status");
    check(data !== undefined, "missions list body");
    equal(data.count, 0, "a new user has no missions");
    equal(data.results, [], "no results");
    equal(data.next, null, "no next page");
    equal(data.previous, null, "no previous page");
  });

  const planSteps: StepInput[] = [
    {
      title: "Collect",
      children: [
        { title: "Collect W-2" },
        { title: "Collect 1099", description: "from the bank" },
      ],
    },
    { title: "Review", children: [{ title: "Check totals", children: [{ title: "Sign" }] }] },
    { title: "Submit" },
  ];
  const mission = await timed("POST /api/missions/ with nested plan_steps", async () => {
    const { data, error, response } = await api.POST("/api/missions/", {
      body: {
        title: "Retrieve tax documents",
        type: "document_retrieval",
        priority: "high",
        description: "Every form of 2025",
        plan_steps: planSteps,
      },
    });
    equal(response.status, 201, "create status");
    check(data !== undefined, "created mission", error);
    equal(data.status, "pending", "a new mission is pending");
    equal(data.progress, 0, "a new mission has progress 0");
    equal(data.priority, "high", "priority");
    equal(data.type, "document_retrieval", "type");
    equal(data.owner, user.id, "owner");
    equal(data.steps_total, 7, "steps_total counts every level");
    equal(data.started_at, null, "not started yet");
    return data;
  });

  await timed("GET /api/missions/{id}/ (the plan tree)", async () => {
    const { data, response } = await api.GET("/api/missions/{id}/", {
      params: { path: { id: mission.id } },
    });
    equal(response.status, 200, "detail status");
    check(data !== undefined, "mission detail");
    equal(shapeOf(data.plan_steps), shapeOfInput(planSteps), "plan tree in creation order");
    equal(countSteps(data.plan_steps), 7, "steps in the tree");
    for (const step of flatten(data.plan_steps)) {
      equal(step.mission, mission.id, `step ${step.id} mission`);
      equal(step.status, "pending", `step ${step.id} status`);
      equal(step.action.kind, "manual", `step ${step.id} default action`);
    }
    equal(data.documents, [], "no documents yet");
  });

  await timed("POST /api/missions/{id}/start/", async () => {
    const { data, error, response } = await api.POST("/api/missions/{id}/start/", {
      params: { path: { id: mission.id } },
    });
    equal(response.status, 200, "start status");
    check(data !== undefined, "started mission", error);
    equal(data.status, "in_progress", "status after start");
    check(data.started_at !== null, "started_at is set", data);
  });

  await timed("POST /api/missions/{id}/start/ again is 409", async () => {
    const { data, error, response } = await api.POST("/api/missions/{id}/start/", {
      params: { path: { id: mission.id } },
    });
    equal(response.status, 409, "second start status");
    check(data === undefined, "no data on 409", data);
    equal(codeOf(error), "invalid_transition", "409 code");
  });

  await timed("GET /api/missions/?status=in_progress", async () => {
    const { data, response } = await api.GET("/api/missions/", {
      params: { query: { status: ["in_progress", "cancelled"] } },
    });
    equal(response.status, 200, "filtered list status");
    check(data !== undefined, "filtered list");
    equal(
      data.results.map((m) => [m.id, m.status]),
      [[mission.id, "in_progress"]],
      "the started mission is listed as in_progress",
    );
  });

  const text = "date,amount\n2025-04-15,1234.56\n";
  const document = await timed("POST /api/documents/ (multipart)", async () => {
    const { data, error, response } = await api.POST("/api/documents/", {
      body: { file: text, name: "Tax summary", type: "tax_return", mission: mission.id },
      // The schema types the file part as a (binary) string; the browser and
      // Node send it as a Blob part with a file name.
      bodySerializer(body) {
        const form = new FormData();
        form.append("file", new Blob([body.file], { type: "text/csv" }), "summary.csv");
        for (const [key, value] of Object.entries(body)) {
          if (key !== "file" && value !== undefined && value !== null) {
            form.append(key, String(value));
          }
        }
        return form;
      },
    });
    equal(response.status, 201, "upload status");
    check(data !== undefined, "uploaded document", error);
    equal(data.name, "Tax summary", "document name");
    equal(data.type, "tax_return", "document type");
    equal(data.status, "uploaded", "document status");
    equal(data.verified, false, "not verified yet");
    equal(data.mission, mission.id, "document mission");
    equal(data.owner, user.id, "document owner");
    equal(data.original_filename, "summary.csv", "original file name");
    equal(data.content_type, "text/csv", "sniffed content type");
    equal(data.size, Buffer.byteLength(text), "size");
    equal(data.sha256, createHash("sha256").update(text).digest("hex"), "sha256");
    check(data.download_url.startsWith(baseUrl), "an absolute download_url", data.download_url);
    return data;
  });

  await timed("GET /api/documents/{id}/download/", async () => {
    const { data, response } = await api.GET("/api/documents/{id}/download/", {
      params: { path: { id: document.id } },
      parseAs: "text",
    });
    equal(response.status, 200, "download status");
    equal(data, text, "downloaded bytes");
    equal(response.headers.get("etag")?.includes(document.sha256), true, "ETag is the sha256");
  });

  await timed("GET /api/activities/?mission={id}", async () => {
    const { data, response } = await api.GET("/api/activities/", {
      params: { query: { mission: mission.id } },
    });
    equal(response.status, 200, "activities status");
    check(data !== undefined, "activities list");
    const types = data.results.map((a) => a.type);
    for (const want of ["mission_created", "mission_started", "document_uploaded"]) {
      check(types.includes(want), `activity ${want} is listed`, types);
    }
    for (const activity of data.results) {
      equal(activity.mission, mission.id, `activity ${activity.id} mission`);
      equal(activity.user, user.id, `activity ${activity.id} user`);
    }
    equal(data.count, data.results.length, "one page holds them all");
    const uploaded = data.results.find((a) => a.type === "document_uploaded");
    equal(uploaded?.document, document.id, "document_uploaded names the document");
  });

  await timed("GET /api/activities/ (own log)", async () => {
    const { data, response } = await api.GET("/api/activities/");
    equal(response.status, 200, "own activities status");
    check(data !== undefined, "own activities");
    check(
      data.results.some((a) => a.type === "user_registered"),
      "user_registered is in the own log",
      data.results.map((a) => a.type),
    );
  });
}

const baseUrl = process.argv[2]?.replace(/\/+$/, "");
if (baseUrl === undefined || baseUrl === "") {
  console.error("usage: node dist/main.js <base URL>");
  process.exit(2);
}
console.log(`typed client against ${baseUrl}`);
main(baseUrl).then(
  () => console.log("typed client: every check passed"),
  (err: unknown) => {
    console.error(err instanceof Mismatch ? `MISMATCH: ${err.message}` : err);
    process.exit(1);
  },
);
