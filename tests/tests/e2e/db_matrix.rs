//! PostgreSQL alone enforces inside a company what the API enforces: raw SQL run in request
//! transactions, for every tenant table x operation x caller x row, against expected outcomes.
//! Where an outcome follows from a permission, it is derived from `policies/policy.csv` (and the
//! custom role's grants), so a policy and its database rule cannot drift apart.

use std::collections::BTreeSet;

use sea_orm::{ConnectionTrait, DbBackend, Statement};
use tests::{TestApp, TestUser, policy::Policy};
use uuid::Uuid;

/// The custom role of the matrix, and what it is granted (at most what a manager may do).
const CUSTOM: &str = "analyst";
const CUSTOM_GRANTS: &[(&str, &str)] = &[
    ("company", "read"),
    ("user", "read"),
    ("audience", "manage"),
    ("invitation", "read"),
    ("preset", "read"),
    ("conversation", "manage"),
];

/// Whose row a case touches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Row {
    Own,
    Other,
    Foreign,
}

const ROWS: [Row; 3] = [Row::Own, Row::Other, Row::Foreign];

/// The people of the fixture. Company A: the four callers, `other`, `third` and `blocker`
/// (members).
/// Company B: `foreign` (a member) and its admin.
struct People {
    callers: Vec<TestUser>,
    other: TestUser,
    third: TestUser,
    blocker: TestUser,
    foreign: TestUser,
    foreign_admin: TestUser,
}

impl People {
    /// The user whose row `row` is, from `caller`'s point of view.
    fn owner<'a>(&'a self, caller: &'a TestUser, row: Row) -> &'a TestUser {
        match row {
            Row::Own => caller,
            Row::Other => &self.other,
            Row::Foreign => &self.foreign,
        }
    }
}

/// What each role may do: policy.csv for the built-in roles, the grants above for the custom one.
struct Permissions {
    policy: Policy,
}

impl Permissions {
    fn may(&self, role: &str, object: &str, action: &str) -> bool {
        if role == CUSTOM {
            return CUSTOM_GRANTS
                .iter()
                .any(|(o, a)| *o == object && (*a == action || *a == "manage"));
        }
        self.policy.allows(role, object, action)
    }
}

/// One case: a label, the caller, the SQL, and whether PostgreSQL must let it through.
struct Case {
    label: String,
    caller: TestUser,
    sql: String,
    select: bool,
    allowed: bool,
}

/// Runs `sql` as `caller` in a request transaction that is rolled back afterwards, so every
/// case meets the same fixture. A statement is let through when it raises no error and reads
/// or changes at least one row.
async fn let_through(app: &TestApp, caller: &TestUser, sql: &str, select: bool) -> bool {
    let Ok(tx) = app.request_tx(caller, server::db::Access::ReadWrite).await else {
        return false;
    };
    let outcome = if select {
        tx.conn()
            .query_all_raw(Statement::from_string(DbBackend::Postgres, sql.to_owned()))
            .await
            .map(|rows| !rows.is_empty())
    } else {
        tx.conn()
            .execute_unprepared(sql)
            .await
            .map(|r| r.rows_affected() > 0)
    };
    drop(tx);
    outcome.unwrap_or(false)
}

async fn fixture(app: &TestApp) -> anyhow::Result<People> {
    let a = app.create_company("Acme").await?;
    let b = app.create_company("Globex").await?;
    app.sql(&format!(
        "INSERT INTO roles (company_id, name, grants) VALUES ('{a}', '{CUSTOM}', '{}')",
        serde_json::to_string(
            &CUSTOM_GRANTS
                .iter()
                .map(|(o, a)| serde_json::json!({ "object": o, "action": a }))
                .collect::<Vec<_>>()
        )?
    ))
    .await?;
    let mut callers = Vec::new();
    for role in ["member", "manager", "admin", CUSTOM] {
        callers.push(
            app.create_user(a, &format!("{role}@acme.example"), role)
                .await?,
        );
    }
    let people = People {
        callers,
        other: app.create_user(a, "other@acme.example", "member").await?,
        third: app.create_user(a, "third@acme.example", "member").await?,
        blocker: app.create_user(a, "blocker@acme.example", "member").await?,
        foreign: app
            .create_user(b, "member@globex.example", "member")
            .await?,
        foreign_admin: app.create_user(b, "admin@globex.example", "admin").await?,
    };
    // Rows of everyone who owns some: the callers, `other`, and `foreign`.
    let mut owners: Vec<&TestUser> = people.callers.iter().collect();
    owners.extend([&people.other, &people.foreign]);
    for u in owners {
        let (c, id) = (u.company_id, u.id);
        app.sql(&format!(
            "INSERT INTO presets (id, company_id, owner_id, name, filter) VALUES ('{p}', '{c}', '{id}', 'p-{id}', '{{}}');
             INSERT INTO conversations (id, company_id, user_id, title)
                 VALUES ('{conv}', '{c}', '{id}', 'Chat'), ('{quiet}', '{c}', '{id}', 'Quiet');
             INSERT INTO messages (id, company_id, user_id, conversation_id, role, content, status)
                 VALUES ('{m}', '{c}', '{id}', '{conv}', 'user', 'hi', 'complete'),
                        ('{s}', '{c}', '{id}', '{conv}', 'assistant', '', 'streaming');
             INSERT INTO knowledge (id, company_id, user_id, content) VALUES ('{k}', '{c}', '{id}', 'note');
             INSERT INTO audience_fields (company_id, name, type) VALUES ('{c}', 'f_{short}', 'string')
                 ON CONFLICT DO NOTHING;
             INSERT INTO invitations (id, company_id, email, role, token_hash, invited_by, expires_at)
                 VALUES ('{inv}', '{c}', 'new-{id}@example.com', 'member', md5(random()::text), '{id}', now() + interval '1 day');
             INSERT INTO sessions (id, company_id, user_id, expires_at, absolute_expires_at, fingerprint_hash, revoked_at)
                 VALUES ('{revoked}', '{c}', '{id}', now() + interval '1 day', now() + interval '2 days', 'x', now())",
            p = ids::preset(id),
            conv = ids::conversation(id),
            quiet = ids::quiet_conversation(id),
            m = ids::message(id),
            s = ids::streaming(id),
            k = ids::knowledge(id),
            inv = ids::invitation(id),
            revoked = ids::revoked_session(id),
            short = &id.simple().to_string()[24..],
        ))
        .await?;
    }
    // Each company has its own LLM provider, its key sealed.
    for company in [a, b] {
        app.sql(&format!(
            "INSERT INTO company_llm_providers (company_id, base_url, model, api_key_sealed)
             VALUES ('{company}', 'https://llm.example.com/v1', 'm', 'v1:k1:AAAA')"
        ))
        .await?;
    }
    // Friendships: each caller has a pending request from `third`; `other` and `third` are
    // friends; so are the two people of company B.
    let mut pairs: Vec<(&TestUser, &TestUser, &str)> = people
        .callers
        .iter()
        .map(|c| (c, &people.third, "pending"))
        .collect();
    pairs.push((&people.other, &people.third, "accepted"));
    pairs.push((&people.foreign, &people.foreign_admin, "accepted"));
    for (x, y, status) in pairs {
        let (lo, hi) = if x.id < y.id {
            (x.id, y.id)
        } else {
            (y.id, x.id)
        };
        app.sql(&format!(
            "INSERT INTO friendships (id, company_id, user_a, user_b, status, requested_by)
             VALUES ('{}', '{}', '{lo}', '{hi}', '{status}', '{}')",
            ids::friendship(x.id),
            x.company_id,
            y.id
        ))
        .await?;
    }
    for caller in &people.callers {
        let (x, y) = (caller.id, people.blocker.id);
        let (lo, hi) = if x < y { (x, y) } else { (y, x) };
        app.sql(&format!(
            "INSERT INTO friendships (id, company_id, user_a, user_b, status, requested_by, blocked_by)
             VALUES ('{}', '{}', '{lo}', '{hi}', 'blocked', '{y}', '{y}')",
            ids::block(x),
            caller.company_id,
        ))
        .await?;
    }
    Ok(people)
}

/// Ids of each owner's fixture rows, derived from the owner's id so cases can name them.
mod ids {
    use uuid::Uuid;

    fn derive(owner: Uuid, kind: u8) -> Uuid {
        let mut bytes = *owner.as_bytes();
        bytes[0] ^= kind;
        bytes[1] ^= 0x5a;
        Uuid::from_bytes(bytes)
    }
    pub fn preset(owner: Uuid) -> Uuid {
        derive(owner, 1)
    }
    pub fn conversation(owner: Uuid) -> Uuid {
        derive(owner, 2)
    }
    pub fn message(owner: Uuid) -> Uuid {
        derive(owner, 3)
    }
    pub fn streaming(owner: Uuid) -> Uuid {
        derive(owner, 4)
    }
    pub fn knowledge(owner: Uuid) -> Uuid {
        derive(owner, 5)
    }
    pub fn invitation(owner: Uuid) -> Uuid {
        derive(owner, 6)
    }
    pub fn revoked_session(owner: Uuid) -> Uuid {
        derive(owner, 7)
    }
    pub fn friendship(owner: Uuid) -> Uuid {
        derive(owner, 8)
    }
    pub fn block(owner: Uuid) -> Uuid {
        derive(owner, 9)
    }
    /// A conversation with no reply streaming, to add messages to.
    pub fn quiet_conversation(owner: Uuid) -> Uuid {
        derive(owner, 10)
    }
}

/// Every case of the matrix, with its expected outcome.
fn cases(people: &People, perms: &Permissions) -> Vec<Case> {
    let mut cases = Vec::new();
    for caller in &people.callers {
        let role = caller.role.as_str();
        let may = |object: &str, action: &str| perms.may(role, object, action);
        let mut add = |label: String, sql: String, select: bool, allowed: bool| {
            cases.push(Case {
                label: format!("{role}: {label}"),
                caller: caller.clone(),
                sql,
                select,
                allowed,
            });
        };
        let me = caller.id;
        let company = caller.company_id;
        for row in ROWS {
            let owner = people.owner(caller, row);
            let (id, c) = (owner.id, owner.company_id);
            let home = row != Row::Foreign;
            let own = row == Row::Own;
            let r = format!("{row:?}").to_lowercase();

            // companies: read with the company; renamed by whoever may update it.
            if row != Row::Other {
                add(
                    format!("companies select {r}"),
                    format!("SELECT id FROM companies WHERE id = '{c}'"),
                    true,
                    home && may("company", "read"),
                );
                add(
                    format!("companies update name {r}"),
                    format!("UPDATE companies SET name = 'X' WHERE id = '{c}'"),
                    false,
                    home && may("company", "update"),
                );
                add(
                    format!("companies delete {r}"),
                    format!("DELETE FROM companies WHERE id = '{c}'"),
                    false,
                    false,
                );
            }

            // company_llm_providers: the company's row, read and written by whoever manages the
            // company; the sealed key read by no request role, and the row's company fixed.
            if row != Row::Other {
                let admins = home && may("company", "manage");
                add(
                    format!("company_llm_providers select {r}"),
                    format!(
                        "SELECT company_id FROM company_llm_providers WHERE company_id = '{c}'"
                    ),
                    true,
                    admins,
                );
                add(
                    format!("company_llm_providers select sealed key {r}"),
                    format!(
                        "SELECT api_key_sealed FROM company_llm_providers WHERE company_id = '{c}'"
                    ),
                    true,
                    false,
                );
                add(
                    format!("company_llm_providers update {r}"),
                    format!(
                        "UPDATE company_llm_providers SET model = 'x', api_key_sealed = NULL WHERE company_id = '{c}'"
                    ),
                    false,
                    admins,
                );
                add(
                    format!("company_llm_providers move {r}"),
                    format!(
                        "UPDATE company_llm_providers SET company_id = '{company}' WHERE company_id = '{c}'"
                    ),
                    false,
                    false,
                );
                add(
                    format!("company_llm_providers delete {r}"),
                    format!("DELETE FROM company_llm_providers WHERE company_id = '{c}'"),
                    false,
                    admins,
                );
                add(
                    format!("company_llm_providers insert {r}"),
                    format!(
                        "DELETE FROM company_llm_providers WHERE company_id = '{c}'; \
                         INSERT INTO company_llm_providers (company_id, base_url, model) \
                         VALUES ('{c}', 'https://other.example/v1', 'm')"
                    ),
                    false,
                    admins,
                );
            }

            // users: the row of `owner`.
            let managed = home && may("user", "manage");
            add(
                format!("users select {r}"),
                format!("SELECT id FROM users WHERE id = '{id}'"),
                true,
                home && (own || may("user", "read")),
            );
            add(
                format!("users update display_name {r}"),
                format!("UPDATE users SET display_name = 'X' WHERE id = '{id}'"),
                false,
                (own && may("user", "update")) || managed,
            );
            add(
                format!("users update attributes {r}"),
                format!("UPDATE users SET attributes = '{{\"x\": 1}}' WHERE id = '{id}'"),
                false,
                (own && may("user", "update")) || managed,
            );
            add(
                format!("users update role {r}"),
                format!(
                    "UPDATE users SET role = CASE WHEN role = 'member' THEN 'manager' ELSE 'member' END WHERE id = '{id}'"
                ),
                false,
                !own && managed,
            );
            // The only admin of the company cannot deactivate themselves: the company keeps one.
            add(
                format!("users update is_active {r}"),
                format!("UPDATE users SET is_active = false WHERE id = '{id}'"),
                false,
                managed && !(own && role == "admin"),
            );
            add(
                format!("users update email {r}"),
                format!("UPDATE users SET email = 'x@evil.example' WHERE id = '{id}'"),
                false,
                false,
            );
            add(
                format!("users update password_hash {r}"),
                format!("UPDATE users SET password_hash = 'x' WHERE id = '{id}'"),
                false,
                own && may("session", "update"),
            );
            add(
                format!("users update profile_visibility {r}"),
                format!("UPDATE users SET profile_visibility = 'private' WHERE id = '{id}'"),
                false,
                own && may("user", "update"),
            );
            add(
                format!("users insert {r}"),
                format!(
                    "INSERT INTO users (company_id, email, display_name) VALUES ('{c}', 'n-{}@x.example', 'N')",
                    Uuid::new_v4()
                ),
                false,
                false,
            );
            add(
                format!("users delete {r}"),
                format!("DELETE FROM users WHERE id = '{id}'"),
                false,
                false,
            );

            // sessions: one's own live one (`owner.session_id`), and a revoked one.
            let sid = owner.session_id;
            let revoked = ids::revoked_session(id);
            add(
                format!("sessions select {r}"),
                format!("SELECT id FROM sessions WHERE id = '{sid}'"),
                true,
                (own && may("session", "read")) || managed,
            );
            add(
                format!("sessions revoke {r}"),
                format!(
                    "UPDATE sessions SET revoked_at = now(), revoked_reason = 'x' WHERE id = '{sid}'"
                ),
                false,
                (own && may("session", "delete")) || managed,
            );
            add(
                format!("sessions un-revoke {r}"),
                format!("UPDATE sessions SET revoked_at = NULL WHERE id = '{revoked}'"),
                false,
                false,
            );
            add(
                format!("sessions extend {r}"),
                format!(
                    "UPDATE sessions SET absolute_expires_at = now() + interval '1 year' WHERE id = '{sid}'"
                ),
                false,
                false,
            );
            add(
                format!("sessions insert {r}"),
                format!(
                    "INSERT INTO sessions (id, company_id, user_id, expires_at, absolute_expires_at, fingerprint_hash) VALUES (gen_random_uuid(), '{c}', '{id}', now() + interval '1 day', now() + interval '1 day', 'x')"
                ),
                false,
                false,
            );
            add(
                format!("sessions delete {r}"),
                format!("DELETE FROM sessions WHERE id = '{sid}'"),
                false,
                false,
            );
            add(
                format!("refresh_tokens select {r}"),
                format!("SELECT token_hash FROM refresh_tokens WHERE session_id = '{sid}'"),
                true,
                false,
            );

            // invitations: `owner` invited someone.
            let inv = ids::invitation(id);
            add(
                format!("invitations select {r}"),
                format!("SELECT id FROM invitations WHERE id = '{inv}'"),
                true,
                home && may("invitation", "read"),
            );
            add(
                format!("invitations insert by {r}"),
                format!(
                    "INSERT INTO invitations (id, company_id, email, role, token_hash, invited_by, expires_at) VALUES (gen_random_uuid(), '{c}', 'n-{}@x.example', 'member', md5(random()::text), '{id}', now() + interval '1 day')",
                    Uuid::new_v4()
                ),
                false,
                own && may("invitation", "create"),
            );
            add(
                format!("invitations accept {r}"),
                format!("UPDATE invitations SET accepted_at = now() WHERE id = '{inv}'"),
                false,
                false,
            );
            add(
                format!("invitations delete {r}"),
                format!("DELETE FROM invitations WHERE id = '{inv}'"),
                false,
                false,
            );

            // outbound_emails: mail to anyone, and the mail of an invitation made just now.
            add(
                format!("outbound_emails insert to anyone {r}"),
                format!(
                    "INSERT INTO outbound_emails (company_id, recipient, template, subject, body) VALUES ('{c}', 'victim@x.example', 'invitation', 'Hi', 'click')"
                ),
                false,
                false,
            );
            add(
                format!("outbound_emails insert for a new invitation {r}"),
                format!(
                    "INSERT INTO invitations (id, company_id, email, role, token_hash, invited_by, expires_at) VALUES (gen_random_uuid(), '{c}', 'fresh@x.example', 'member', md5(random()::text), '{me}', now() + interval '1 day'); \
                 INSERT INTO outbound_emails (company_id, recipient, template, subject, body) VALUES ('{c}', 'fresh@x.example', 'invitation', 'Hi', 'link')"
                ),
                false,
                home && may("invitation", "create"),
            );
            add(
                format!("outbound_emails select {r}"),
                format!("SELECT id FROM outbound_emails WHERE company_id = '{c}'"),
                true,
                false,
            );

            // roles and audience_fields of the company.
            if row != Row::Other {
                add(
                    format!("roles select {r}"),
                    format!(
                        "SELECT name FROM roles WHERE company_id = '{c}' AND name = '{CUSTOM}'"
                    ),
                    true,
                    home,
                );
                add(
                    format!("roles insert {r}"),
                    format!("INSERT INTO roles (company_id, name) VALUES ('{c}', 'newrole')"),
                    false,
                    home && may("company", "manage"),
                );
                add(
                    format!("roles update {r}"),
                    format!("UPDATE roles SET description = 'x' WHERE company_id = '{c}'"),
                    false,
                    home && may("company", "manage"),
                );
                add(
                    format!("roles delete {r}"),
                    format!("DELETE FROM roles WHERE company_id = '{c}'"),
                    false,
                    home && may("company", "manage"),
                );
            }
            let field = format!("f_{}", &id.simple().to_string()[24..]);
            add(
                format!("audience_fields select {r}"),
                format!(
                    "SELECT name FROM audience_fields WHERE company_id = '{c}' AND name = '{field}'"
                ),
                true,
                home && may("audience", "read"),
            );
            add(
                format!("audience_fields insert {r}"),
                format!(
                    "INSERT INTO audience_fields (company_id, name, type) VALUES ('{c}', 'newfield', 'string')"
                ),
                false,
                home && may("audience", "manage"),
            );
            add(
                format!("audience_fields update {r}"),
                format!(
                    "UPDATE audience_fields SET description = 'x' WHERE company_id = '{c}' AND name = '{field}'"
                ),
                false,
                home && may("audience", "manage"),
            );
            add(
                format!("audience_fields delete {r}"),
                format!(
                    "DELETE FROM audience_fields WHERE company_id = '{c}' AND name = '{field}'"
                ),
                false,
                home && may("audience", "manage"),
            );

            // presets: `owner`'s private preset.
            let preset = ids::preset(id);
            let supervises = home && may("audience", "manage");
            add(
                format!("presets select {r}"),
                format!("SELECT id FROM presets WHERE id = '{preset}'"),
                true,
                home && may("preset", "read") && (own || supervises),
            );
            add(
                format!("presets update name {r}"),
                format!("UPDATE presets SET name = 'renamed' WHERE id = '{preset}'"),
                false,
                home && may("preset", "update") && (own || supervises),
            );
            add(
                format!("presets update owner_id {r}"),
                format!(
                    "UPDATE presets SET owner_id = '{}' WHERE id = '{preset}'",
                    people.third.id
                ),
                false,
                false,
            );
            add(
                format!("presets insert owned by {r}"),
                format!(
                    "INSERT INTO presets (company_id, owner_id, name, filter) VALUES ('{c}', '{id}', 'new', '{{}}')"
                ),
                false,
                own && may("preset", "create"),
            );
            add(
                format!("presets delete {r}"),
                format!("DELETE FROM presets WHERE id = '{preset}'"),
                false,
                home && may("preset", "delete") && (own || supervises),
            );

            // conversations, knowledge and messages: only ever the owner's.
            let conv = ids::conversation(id);
            add(
                format!("conversations select {r}"),
                format!("SELECT id FROM conversations WHERE id = '{conv}'"),
                true,
                own && may("conversation", "read"),
            );
            add(
                format!("conversations update title {r}"),
                format!("UPDATE conversations SET title = 'X' WHERE id = '{conv}'"),
                false,
                own && may("conversation", "update"),
            );
            add(
                format!("conversations update user_id {r}"),
                format!(
                    "UPDATE conversations SET user_id = '{}' WHERE id = '{conv}'",
                    people.third.id
                ),
                false,
                false,
            );
            add(
                format!("conversations insert for {r}"),
                format!(
                    "INSERT INTO conversations (id, company_id, user_id, title) VALUES (gen_random_uuid(), '{c}', '{id}', 'New')"
                ),
                false,
                own && may("conversation", "create"),
            );
            add(
                format!("conversations delete {r}"),
                format!("DELETE FROM conversations WHERE id = '{conv}'"),
                false,
                own && may("conversation", "delete"),
            );
            let k = ids::knowledge(id);
            add(
                format!("knowledge select {r}"),
                format!("SELECT id FROM knowledge WHERE id = '{k}'"),
                true,
                own && may("conversation", "read"),
            );
            add(
                format!("knowledge insert for {r}"),
                format!(
                    "INSERT INTO knowledge (id, company_id, user_id, content) VALUES (gen_random_uuid(), '{c}', '{id}', 'note')"
                ),
                false,
                own && may("conversation", "create"),
            );
            add(
                format!("knowledge delete {r}"),
                format!("DELETE FROM knowledge WHERE id = '{k}'"),
                false,
                own && may("conversation", "delete"),
            );
            let (m, s) = (ids::message(id), ids::streaming(id));
            add(
                format!("messages select {r}"),
                format!("SELECT id FROM messages WHERE id = '{m}'"),
                true,
                own && may("message", "read"),
            );
            // A message of the caller's own, into `owner`'s conversation.
            let quiet = ids::quiet_conversation(id);
            add(
                format!("messages insert user message into conversation of {r}"),
                format!(
                    "INSERT INTO messages (id, company_id, user_id, conversation_id, role, content, status) VALUES (gen_random_uuid(), '{company}', '{me}', '{quiet}', 'user', 'hello', 'complete')"
                ),
                false,
                own && may("message", "create"),
            );
            add(
                format!("messages insert reply placeholder into conversation of {r}"),
                format!(
                    "INSERT INTO messages (id, company_id, user_id, conversation_id, role, content, status) VALUES (gen_random_uuid(), '{company}', '{me}', '{quiet}', 'assistant', '', 'streaming')"
                ),
                false,
                own && may("message", "create"),
            );
            add(
                format!("messages insert assistant text into conversation of {r}"),
                format!(
                    "INSERT INTO messages (id, company_id, user_id, conversation_id, role, content, status) VALUES (gen_random_uuid(), '{company}', '{me}', '{quiet}', 'assistant', 'forged', 'complete')"
                ),
                false,
                false,
            );
            add(
                format!("messages cancel streaming {r}"),
                format!("UPDATE messages SET status = 'cancelled' WHERE id = '{s}'"),
                false,
                own && may("message", "update"),
            );
            add(
                format!("messages complete streaming {r}"),
                format!("UPDATE messages SET status = 'complete' WHERE id = '{s}'"),
                false,
                false,
            );
            add(
                format!("messages update content {r}"),
                format!("UPDATE messages SET content = 'forged' WHERE id = '{m}'"),
                false,
                false,
            );
            add(
                format!("messages delete {r}"),
                format!("DELETE FROM messages WHERE id = '{m}'"),
                false,
                own && may("message", "delete"),
            );

            // audience_members and audience_bits: written by the users' trigger alone, read
            // through the masked view audience_bitmaps alone.
            for table in ["audience_members", "audience_bits"] {
                add(
                    format!("{table} select {r}"),
                    format!("SELECT company_id FROM {table} WHERE company_id = '{c}'"),
                    true,
                    false,
                );
                add(
                    format!("{table} delete {r}"),
                    format!("DELETE FROM {table} WHERE company_id = '{c}'"),
                    false,
                    false,
                );
            }
            add(
                format!("audience_members renumber {r}"),
                format!(
                    "UPDATE audience_members SET member = member + 1000000 WHERE user_id = '{id}'"
                ),
                false,
                false,
            );
            add(
                format!("audience_bits flip {r}"),
                format!("UPDATE audience_bits SET bits = ~bits WHERE company_id = '{c}'"),
                false,
                false,
            );
            add(
                format!("audience_bits insert for {r}"),
                format!(
                    "INSERT INTO audience_bits (company_id, term, seg, bits) VALUES ('{c}', 'plan:s=forged', 0, B'1'::bit(1024))"
                ),
                false,
                false,
            );
            add(
                format!("audience_bitmaps select {r}"),
                format!(
                    "SELECT term FROM audience_bitmaps WHERE company_id = '{c}' AND term = '*'"
                ),
                true,
                home && may("audience", "read"),
            );

            // friendships: the caller's pending request from `third`; `other` and `third`'s
            // friendship; company B's friendship.
            let f = match row {
                Row::Own => ids::friendship(me),
                Row::Other => ids::friendship(people.other.id),
                Row::Foreign => ids::friendship(people.foreign.id),
            };
            add(
                format!("friendships select {r}"),
                format!("SELECT id FROM friendships WHERE id = '{f}'"),
                true,
                own && may("friendship", "read"),
            );
            add(
                format!("friendships accept {r}"),
                format!(
                    "UPDATE friendships SET status = 'accepted', responded_at = now() WHERE id = '{f}' AND status = 'pending'"
                ),
                false,
                own && may("friendship", "update"),
            );
            add(
                format!("friendships delete {r}"),
                format!("DELETE FROM friendships WHERE id = '{f}'"),
                false,
                own && may("friendship", "delete"),
            );
        }
        // Requests between the caller and `other`, who have no friendship yet.
        let (lo, hi) = if me < people.other.id {
            (me, people.other.id)
        } else {
            (people.other.id, me)
        };
        add(
            "friendships insert request".into(),
            format!(
                "INSERT INTO friendships (company_id, user_a, user_b, status, requested_by) VALUES ('{company}', '{lo}', '{hi}', 'pending', '{me}')"
            ),
            false,
            may("friendship", "create"),
        );
        add(
            "friendships insert request in someone else's name".into(),
            format!(
                "INSERT INTO friendships (company_id, user_a, user_b, status, requested_by) VALUES ('{company}', '{lo}', '{hi}', 'pending', '{}')",
                people.other.id
            ),
            false,
            false,
        );
        add(
            "friendships insert block".into(),
            format!(
                "INSERT INTO friendships (company_id, user_a, user_b, status, requested_by, blocked_by) VALUES ('{company}', '{lo}', '{hi}', 'blocked', '{me}', '{me}')"
            ),
            false,
            may("friendship", "create"),
        );
        add(
            "friendships insert accepted".into(),
            format!(
                "INSERT INTO friendships (company_id, user_a, user_b, status, requested_by) VALUES ('{company}', '{lo}', '{hi}', 'accepted', '{}')",
                people.other.id
            ),
            false,
            false,
        );
        add(
            "friendships accept one's own request".into(),
            format!(
                "INSERT INTO friendships (id, company_id, user_a, user_b, status, requested_by) VALUES ('{f}', '{company}', '{lo}', '{hi}', 'pending', '{me}'); \
             UPDATE friendships SET status = 'accepted', responded_at = now() WHERE id = '{f}'",
                f = Uuid::new_v4()
            ),
            false,
            false,
        );
        add(
            "friendships block and lift one's own block".into(),
            format!(
                "INSERT INTO friendships (id, company_id, user_a, user_b, status, requested_by, blocked_by) VALUES ('{f}', '{company}', '{lo}', '{hi}', 'blocked', '{me}', '{me}'); \
             DELETE FROM friendships WHERE id = '{f}'",
                f = Uuid::new_v4()
            ),
            false,
            may("friendship", "create") && may("friendship", "delete"),
        );
        // `blocker` blocked every caller: the blocked one cannot lift it.
        let block = ids::block(me);
        add(
            "friendships lift a block by someone else (update)".into(),
            format!(
                "UPDATE friendships SET status = 'pending', blocked_by = NULL WHERE id = '{block}'"
            ),
            false,
            false,
        );
        add(
            "friendships lift a block by someone else (delete)".into(),
            format!("DELETE FROM friendships WHERE id = '{block}'"),
            false,
            false,
        );
        add(
            "friendships see a block by someone else".into(),
            format!("SELECT id FROM friendships WHERE id = '{block}'"),
            true,
            may("friendship", "read"),
        );
        add(
            "friendships insert block by the other".into(),
            format!(
                "INSERT INTO friendships (company_id, user_a, user_b, status, requested_by, blocked_by) VALUES ('{company}', '{lo}', '{hi}', 'blocked', '{o}', '{o}')",
                o = people.other.id
            ),
            false,
            false,
        );
    }
    cases
}

#[tokio::test]
async fn postgres_enforces_every_rule_of_the_api_for_every_table_caller_and_row()
-> anyhow::Result<()> {
    // The streaming replies of the fixture have no generator: keep the lease sweep off them
    // for the length of the test.
    let app = TestApp::spawn_with(|c| c.chat_lease_secs = 3600).await?;
    let people = fixture(&app).await?;
    let perms = Permissions {
        policy: tests::policy::policy()?,
    };
    let cases = cases(&people, &perms);
    let mut wrong = Vec::new();
    let mut outcomes = BTreeSet::new();
    for case in &cases {
        let through = let_through(&app, &case.caller, &case.sql, case.select).await;
        outcomes.insert(through);
        if through != case.allowed {
            wrong.push(format!(
                "{} — expected {}, got {}",
                case.label,
                if case.allowed { "allowed" } else { "refused" },
                if through { "allowed" } else { "refused" }
            ));
        }
    }
    anyhow::ensure!(
        outcomes.len() == 2,
        "the matrix must contain cases of both outcomes"
    );
    anyhow::ensure!(
        wrong.is_empty(),
        "{} of {} cases differ:\n{}",
        wrong.len(),
        cases.len(),
        wrong.join("\n")
    );
    Ok(())
}
