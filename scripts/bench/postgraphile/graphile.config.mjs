// PostGraphile 5 against the bench database, for the side-by-side figures of scripts/bench.sh.
//
// It connects as the server's pool role (app_authenticator) and, like the server, runs every
// request in a transaction as `app_user` with the `app.*` variables that app.begin_request
// sets (app.user_id, app.company_id, app.role, and app.grants, the role's grants, which
// scripts/bench.sh reads once from the database as BENCH_GRANTS), taken from the same access token the server
// verifies: HS256 with the bench's JWT secret, the server's issuer and audience, `exp`
// checked. Row Level Security then decides the rows, as it does for the server.
//
// Environment (set by scripts/bench.sh): BENCH_PG_URL (app_authenticator's connection
// string), BENCH_JWT_SECRET, BENCH_JWT_ISSUER, BENCH_JWT_AUDIENCE, BENCH_PG_POOL (pool size,
// the server's DB_MAX_CONNECTIONS), BENCH_PG5_PORT, BENCH_GRANTS (JSON: built-in role → grants).
import jwt from "jsonwebtoken";
import { GraphQLBoolean } from "postgraphile/graphql";
import { makePgService } from "postgraphile/adaptors/pg";
import { defaultMaskError } from "postgraphile/grafserv";
import { PostGraphileAmberPreset } from "postgraphile/presets/amber";
import { addPgTableCondition, jsonPgSmartTags } from "postgraphile/utils";

function required(name) {
  const value = process.env[name];
  if (!value) {
    throw new Error(`${name} is not set`);
  }
  return value;
}

const secret = required("BENCH_JWT_SECRET");
const verifyOptions = {
  algorithms: ["HS256"],
  issuer: required("BENCH_JWT_ISSUER"),
  audience: required("BENCH_JWT_AUDIENCE"),
  clockTolerance: 5, // the server's JWT_LEEWAY_SECS
};
const grants = JSON.parse(required("BENCH_GRANTS"));
const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

// The token's identity as PostgreSQL settings, or an error (the request then fails).
function pgSettingsOf(authorization) {
  const [scheme, token] = (authorization ?? "").split(" ");
  if (scheme?.toLowerCase() !== "bearer" || !token) {
    throw Object.assign(new Error("no bearer token"), { statusCode: 401 });
  }
  const claims = jwt.verify(token, secret, verifyOptions);
  const { sub, company, role, exp } = claims;
  if (!uuid.test(sub ?? "") || !uuid.test(company ?? "") || typeof role !== "string" || typeof exp !== "number") {
    throw Object.assign(new Error("the token lacks sub, company, role or exp"), { statusCode: 401 });
  }
  return {
    role: "app_user",
    "app.user_id": sub,
    "app.company_id": company,
    "app.role": role,
    // An unknown role is granted nothing, as app.may answers for an unset app.grants.
    "app.grants": Object.hasOwn(grants, role) ? grants[role] : ",",
  };
}

// The users page of the server hides people in a block relation with the caller
// (`relation NOT IN ('blocked', 'blocked_by')`): the same filter, as a condition.
const VisibleCondition = addPgTableCondition(
  { schemaName: "public", tableName: "user_profiles" },
  "visible",
  () => ({ type: GraphQLBoolean, description: "Only people outside a block relation with the caller." }),
  (value, { sql, sqlTableAlias }) =>
    value === true ? sql`${sqlTableAlias}.relation not in ('blocked', 'blocked_by')` : null,
);

// user_profiles is a view: name its key (for cursors and stable order) and let both pages order
// by the columns the server orders by (PostGraphile only offers indexed columns by default).
const Tags = jsonPgSmartTags({
  version: 1,
  config: {
    class: {
      user_profiles: {
        tags: { primaryKey: "id" },
        attribute: { created_at: { tags: { behavior: "+orderBy" } } },
      },
      presets: {
        attribute: { name: { tags: { behavior: "+orderBy" } } },
      },
    },
  },
});

// No global object ids (NodePlugin off below), so a row's `id` column keeps its name, as in the
// server's answers (PostGraphile 5 otherwise calls it `rowId`; its V4 preset does the same).
const PlainIds = {
  name: "BenchPlainIdsPlugin",
  version: "0.0.0",
  after: ["PgAttributesPlugin"],
  inflection: {
    replace: {
      _attributeName(previous, _options, details) {
        const name = previous(details);
        if (!details.skipRowId && name === "row_id") {
          const attribute = details.codec.attributes[details.attributeName];
          const baseName = attribute.extensions?.tags?.name || details.attributeName;
          if (baseName.toLowerCase() === "id" && !details.codec.isAnonymous) {
            return "id";
          }
        }
        return name;
      },
    },
  },
};

/** @type {GraphileConfig.Preset} */
const preset = {
  extends: [PostGraphileAmberPreset],
  plugins: [Tags, VisibleCondition, PlainIds],
  disablePlugins: ["NodePlugin"],
  pgServices: [
    makePgService({
      connectionString: required("BENCH_PG_URL"),
      schemas: ["public"],
      poolConfig: { max: Number(process.env.BENCH_PG_POOL ?? 16) },
    }),
  ],
  grafserv: {
    host: "127.0.0.1",
    port: Number(required("BENCH_PG5_PORT")),
    graphiql: false,
    watch: false,
    // Every error that reaches an answer goes to the log too, timestamped like the server's
    // log lines, which the bench checks after each run (an answer with errors is still HTTP 200).
    maskError(error) {
      console.error(`${new Date().toISOString()} ERROR BENCH_PG5_ERROR ${error.message}`);
      return defaultMaskError(error);
    },
  },
  grafast: {
    explain: false,
    context(requestContext) {
      const authorization = requestContext.node?.req?.headers?.authorization;
      return { pgSettings: pgSettingsOf(authorization) };
    },
  },
};

export default preset;
