//! The models the admin knows, at Django admin's addresses
//! (`/admin/<app>/<model>/`).

/// A model of the admin and where its pages live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelLink {
    /// Django's app label (`missions`).
    pub app: &'static str,
    /// Django's model name (`mission`).
    pub model: &'static str,
    /// What the index calls its objects.
    pub plural: &'static str,
}

impl ModelLink {
    /// Its changelist's path.
    pub fn changelist(&self) -> String {
        format!("/admin/{}/{}/", self.app, self.model)
    }
}

/// Users.
pub const USERS: ModelLink = ModelLink {
    app: "auth",
    model: "user",
    plural: "Users",
};
/// Missions.
pub const MISSIONS: ModelLink = ModelLink {
    app: "missions",
    model: "mission",
    plural: "Missions",
};
/// Plan steps.
pub const STEPS: ModelLink = ModelLink {
    app: "missions",
    model: "planstep",
    plural: "Plan steps",
};
/// Documents.
pub const DOCUMENTS: ModelLink = ModelLink {
    app: "documents",
    model: "document",
    plural: "Documents",
};
/// Activities.
pub const ACTIVITIES: ModelLink = ModelLink {
    app: "activities",
    model: "activity",
    plural: "Activities",
};
/// Background jobs.
pub const JOBS: ModelLink = ModelLink {
    app: "jobs",
    model: "job",
    plural: "Jobs",
};

/// Every model, in the index's order.
pub const ALL: [ModelLink; 6] = [USERS, MISSIONS, STEPS, DOCUMENTS, ACTIVITIES, JOBS];
