// The function's OpenAPI description, loaded and compiled for checking real answers against it.
// `validateResponse` finds the response object for a method and status, checks the content type,
// the documented headers and the body against its JSON Schema (2020-12, as OpenAPI 3.1 uses).
import { parse } from "npm:yaml@2.9.1";
import Ajv2020Module from "npm:ajv@8.20.0/dist/2020.js";

export const SPEC_FILE = new URL(
  "../../functions/hlf-dynamics-sync/openapi.yaml",
  import.meta.url,
);
export const FUNCTION_PATH = "/functions/v1/hlf-dynamics-sync";

// deno-lint-ignore no-explicit-any
type Json = any;

export interface Spec {
  doc: Json;
  /** Problems with a real answer: empty when it conforms. */
  validateResponse(method: string, status: number, headers: Headers, body: string): string[];
  /** Problems with a request body against the POST request schema: empty when it conforms. */
  validateRequest(body: unknown): string[];
  /** The error codes the spec allows for a status (from its error schema). */
  errorCodes(status: number): string[];
  /** The `Answer` variants (`$ref`s) a 200 body matches. */
  answerKinds(body: unknown): string[];
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export async function loadSpec(): Promise<Spec> {
  const doc = parse(await Deno.readTextFile(SPEC_FILE));
  // deno-lint-ignore no-explicit-any
  const Ajv2020 = ((Ajv2020Module as any).default ?? Ajv2020Module) as any;
  const ajv = new Ajv2020({ strict: false, allErrors: true });
  ajv.addFormat("uuid", UUID);
  ajv.addFormat("date-time", (s: string) => !Number.isNaN(Date.parse(s)));
  // One schema holding the components, so `#/components/...` references resolve inside it.
  ajv.addSchema({ $id: "openapi.json", components: doc.components });
  const schemaFor = (ref: string) => {
    const validate = ajv.getSchema(`openapi.json${ref}`);
    if (!validate) throw new Error(`no schema ${ref} in the spec`);
    return validate;
  };
  const deref = (o: Json): Json => {
    if (o && typeof o.$ref === "string") {
      const path = o.$ref.replace(/^#\//, "").split("/");
      return deref(path.reduce((acc: Json, k: string) => acc?.[k], doc));
    }
    return o;
  };
  const operation = (method: string) => doc.paths[FUNCTION_PATH]?.[method.toLowerCase()];
  const check = (ref: string, value: unknown): string[] => {
    const validate = schemaFor(ref);
    if (validate(value)) return [];
    return (validate.errors ?? []).map((e: Json) =>
      `${ref}: ${e.instancePath || "/"} ${e.message} ${JSON.stringify(e.params)}`
    );
  };

  return {
    doc,
    validateResponse(method, status, headers, body) {
      const op = operation(method);
      // Methods the path does not serve answer the documented 405 response.
      const response = op
        ? deref(op.responses?.[String(status)])
        : status === 405
        ? doc.components.responses.MethodNotAllowed
        : undefined;
      if (!response) return [`${method} ${status} is not a documented status`];
      const problems: string[] = [];
      for (const [name, h] of Object.entries<Json>(response.headers ?? {})) {
        const value = headers.get(name);
        const want = deref(h).schema?.const;
        if (value === null) problems.push(`header ${name} is missing`);
        else if (want !== undefined && value !== want) {
          problems.push(`header ${name} is ${value}, not ${want}`);
        }
      }
      const media = response.content?.["application/json"];
      if (!media) return problems;
      const type = headers.get("content-type") ?? "";
      if (!type.startsWith("application/json")) problems.push(`content-type is ${type}`);
      let value: unknown;
      try {
        value = JSON.parse(body);
      } catch {
        return [...problems, `body is not JSON: ${body.slice(0, 200)}`];
      }
      const ref = media.schema?.$ref;
      if (typeof ref !== "string") return [...problems, "response schema is not a $ref"];
      return [...problems, ...check(ref, value)];
    },
    validateRequest(body) {
      const ref = operation("post").requestBody.content["application/json"].schema.$ref;
      return check(ref, body);
    },
    answerKinds(body) {
      return doc.components.schemas.Answer.oneOf
        .map((s: Json) => s.$ref as string)
        .filter((ref: string) => check(ref, body).length === 0);
    },
    errorCodes(status) {
      const response = status === 405
        ? doc.components.responses.MethodNotAllowed
        : deref(operation("post").responses?.[String(status)]);
      const ref = response?.content?.["application/json"]?.schema?.$ref;
      if (!ref) return [];
      const schema = deref({ $ref: ref });
      const all: string[] = deref({ $ref: "#/components/schemas/ErrorCode" }).enum;
      const narrowed = (schema.allOf ?? []).map((s: Json) => s.properties?.error?.properties?.code)
        .find((c: Json) => c && !c.$ref);
      if (!narrowed) return all;
      return narrowed.const !== undefined ? [narrowed.const] : narrowed.enum;
    },
  };
}
