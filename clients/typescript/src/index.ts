// The Minsheng client: one openapi-fetch client per service, typed by the types generated from that
// service's OpenAPI document (src/generated/, made by `npm run generate`; see docs/clients.md).
import createClient, { type Client, type ClientOptions, type Middleware } from "openapi-fetch";
import type { components as CanteenComponents, paths as CanteenPaths } from "./generated/canteen.js";
import type { components as IdentityComponents, paths as IdentityPaths } from "./generated/identity.js";
import type { components as IssuesComponents, paths as IssuesPaths } from "./generated/issues.js";
import type { components as NotifyComponents, paths as NotifyPaths } from "./generated/notify.js";
import type { components as PointsComponents, paths as PointsPaths } from "./generated/points.js";
import type { components as VisitsComponents, paths as VisitsPaths } from "./generated/visits.js";

// The named schemas of each service. Annotate a request body with its schema
// (`const body: IssuesSchemas["IssueCreate"] = {...}`): TypeScript then refuses a misspelt or removed field,
// which it does not check in a literal passed straight to openapi-fetch.
export type CanteenSchemas = CanteenComponents["schemas"];
export type IdentitySchemas = IdentityComponents["schemas"];
export type IssuesSchemas = IssuesComponents["schemas"];
export type NotifySchemas = NotifyComponents["schemas"];
export type PointsSchemas = PointsComponents["schemas"];
export type VisitsSchemas = VisitsComponents["schemas"];
export type Problem = IssuesSchemas["Problem"];
export type Language = "zh-CN" | "en";

export interface MinshengOptions extends Omit<ClientOptions, "baseUrl"> {
  /** Where the gateway answers, e.g. "https://minsheng.example.gov.cn" (no trailing slash). */
  origin: string;
  /** The current access token, read before every call (after a refresh it is the new one). */
  accessToken?: () => string | undefined;
  /** Human-readable texts (problem titles, catalogue texts) in this language; zh-CN when unset. */
  language?: Language;
}

export interface MinshengClient {
  identity: Client<IdentityPaths>;
  issues: Client<IssuesPaths>;
  visits: Client<VisitsPaths>;
  points: Client<PointsPaths>;
  canteen: Client<CanteenPaths>;
  notify: Client<NotifyPaths>;
}

export function createMinshengClient(options: MinshengOptions): MinshengClient {
  const { origin, accessToken, language, ...rest } = options;
  const headers: Middleware = {
    onRequest({ request }) {
      const token = accessToken?.();
      if (token && !request.headers.has("Authorization")) request.headers.set("Authorization", `Bearer ${token}`);
      if (language) request.headers.set("Accept-Language", language);
      return request;
    },
  };
  function make<Paths extends {}>(service: string): Client<Paths> {
    const client = createClient<Paths>({ ...rest, baseUrl: `${origin}/${service}` });
    client.use(headers);
    return client;
  }
  return {
    identity: make<IdentityPaths>("identity"),
    issues: make<IssuesPaths>("issues"),
    visits: make<VisitsPaths>("visits"),
    points: make<PointsPaths>("points"),
    canteen: make<CanteenPaths>("canteen"),
    notify: make<NotifyPaths>("notify"),
  };
}

/** A problem answer as an Error, keeping the stable `code` to branch on. */
export class ProblemError extends Error {
  constructor(readonly problem: Problem) {
    super(`${problem.status} ${problem.code}: ${problem.detail ?? problem.title}`);
  }
}

/** The data of an openapi-fetch answer, or a ProblemError. */
export function ok<T>(answer: { data?: T; error?: unknown; response: Response }): T {
  if (answer.data !== undefined) return answer.data;
  const problem = answer.error as Problem | undefined;
  throw new ProblemError(
    problem ?? { type: "about:blank", title: answer.response.statusText, status: answer.response.status, code: "http_error" },
  );
}
