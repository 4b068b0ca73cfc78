/**
 * The subset of OData `$filter` the sync uses against Dataverse, parsed properly (after URL
 * decoding) into an AST and evaluated against a record:
 *
 *   Microsoft.Dynamics.CRM.In(PropertyName='contactid',PropertyValues=['<guid>','<guid>'])
 *   contactid eq <guid> or contactid eq <guid>
 *
 * plus `ne`, `and`, `not` and parentheses. Anything else is a syntax error, as Dataverse would
 * answer 400. Types are checked against a schema (Edm.Guid / Edm.Boolean properties).
 */

export type Literal =
  | { type: "guid"; value: string }
  | { type: "string"; value: string }
  | { type: "bool"; value: boolean }
  | { type: "null" };

export type FilterExpr =
  | { op: "and" | "or"; left: FilterExpr; right: FilterExpr }
  | { op: "not"; expr: FilterExpr }
  | { op: "eq" | "ne"; property: string; value: Literal }
  | { op: "in"; property: string; values: string[] };

export type PropertyType = "guid" | "bool";
export type FilterSchema = Readonly<Record<string, PropertyType>>;
export type FilterRecord = Readonly<Record<string, string | boolean | null>>;

export class FilterError extends Error {}

const GUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
export const IN_FUNCTION = "Microsoft.Dynamics.CRM.In";

export function isGuid(text: string): boolean {
  return GUID_RE.test(text);
}

type Token =
  | { t: "punct"; v: "(" | ")" | "[" | "]" | "," | "=" }
  | { t: "string"; v: string }
  | { t: "word"; v: string };

/** Splits filter text into tokens; throws FilterError on an unterminated string or bad char. */
export function tokenize(text: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    if (/\s/.test(c)) {
      i++;
    } else if ("()[],=".includes(c)) {
      tokens.push({ t: "punct", v: c as "(" | ")" | "[" | "]" | "," | "=" });
      i++;
    } else if (c === "'") {
      let value = "";
      i++;
      for (;;) {
        if (i >= text.length) throw new FilterError("Syntax error: unterminated string literal.");
        if (text[i] === "'" && text[i + 1] === "'") {
          value += "'";
          i += 2;
        } else if (text[i] === "'") {
          i++;
          break;
        } else {
          value += text[i++];
        }
      }
      tokens.push({ t: "string", v: value });
    } else {
      const m = /^[A-Za-z0-9_.\-]+/.exec(text.slice(i));
      if (!m) throw new FilterError(`Syntax error at position ${i} in '${text}'.`);
      tokens.push({ t: "word", v: m[0] });
      i += m[0].length;
    }
  }
  return tokens;
}

class Parser {
  #pos = 0;
  constructor(private readonly tokens: Token[], private readonly text: string) {}

  parse(): FilterExpr {
    if (this.tokens.length === 0) throw new FilterError("Syntax error: empty $filter.");
    const expr = this.#or();
    if (this.#pos < this.tokens.length) this.#fail();
    return expr;
  }

  #peek(): Token | undefined {
    return this.tokens[this.#pos];
  }

  #fail(): never {
    throw new FilterError(`Syntax error at position ${this.#pos} in '${this.text}'.`);
  }

  #isWord(v: string): boolean {
    const t = this.#peek();
    return t?.t === "word" && t.v === v;
  }

  #expectPunct(v: string): void {
    const t = this.tokens[this.#pos++];
    if (t?.t !== "punct" || t.v !== v) this.#fail();
  }

  #expectWord(v: string): void {
    if (!this.#isWord(v)) this.#fail();
    this.#pos++;
  }

  #expectString(): string {
    const t = this.tokens[this.#pos++];
    if (t?.t !== "string") this.#fail();
    return t.v;
  }

  #or(): FilterExpr {
    let left = this.#and();
    while (this.#isWord("or")) {
      this.#pos++;
      left = { op: "or", left, right: this.#and() };
    }
    return left;
  }

  #and(): FilterExpr {
    let left = this.#unary();
    while (this.#isWord("and")) {
      this.#pos++;
      left = { op: "and", left, right: this.#unary() };
    }
    return left;
  }

  #unary(): FilterExpr {
    if (this.#isWord("not")) {
      this.#pos++;
      return { op: "not", expr: this.#unary() };
    }
    const t = this.#peek();
    if (t?.t === "punct" && t.v === "(") {
      this.#pos++;
      const expr = this.#or();
      this.#expectPunct(")");
      return expr;
    }
    if (this.#isWord(IN_FUNCTION)) return this.#inFunction();
    return this.#comparison();
  }

  #inFunction(): FilterExpr {
    this.#pos++;
    this.#expectPunct("(");
    this.#expectWord("PropertyName");
    this.#expectPunct("=");
    const property = this.#expectString();
    this.#expectPunct(",");
    this.#expectWord("PropertyValues");
    this.#expectPunct("=");
    this.#expectPunct("[");
    const values = [this.#expectString()];
    while (this.#peek()?.t === "punct" && this.#peek()?.v === ",") {
      this.#pos++;
      values.push(this.#expectString());
    }
    this.#expectPunct("]");
    this.#expectPunct(")");
    return { op: "in", property, values };
  }

  #comparison(): FilterExpr {
    const prop = this.tokens[this.#pos++];
    if (prop?.t !== "word" || !/^[A-Za-z_][A-Za-z0-9_]*$/.test(prop.v)) this.#fail();
    const op = this.tokens[this.#pos++];
    if (op?.t !== "word" || (op.v !== "eq" && op.v !== "ne")) this.#fail();
    return { op: op.v, property: prop.v, value: this.#literal() };
  }

  #literal(): Literal {
    const t = this.tokens[this.#pos++];
    if (t?.t === "string") return { type: "string", value: t.v };
    if (t?.t !== "word") this.#fail();
    if (t.v === "true" || t.v === "false") return { type: "bool", value: t.v === "true" };
    if (t.v === "null") return { type: "null" };
    if (isGuid(t.v)) return { type: "guid", value: t.v.toLowerCase() };
    this.#fail();
  }
}

/** Parses `$filter` text (already URL-decoded). Throws FilterError. */
export function parseFilter(text: string): FilterExpr {
  return new Parser(tokenize(text), text).parse();
}

function unknownProperty(name: string): FilterError {
  return new FilterError(
    `Could not find a property named '${name}' on type 'Microsoft.Dynamics.CRM.contact'.`,
  );
}

function literalFits(type: PropertyType, lit: Literal): boolean {
  return lit.type === "null" || (type === "guid" ? lit.type === "guid" : lit.type === "bool");
}

function edmName(lit: Literal): string {
  return { guid: "Edm.Guid", string: "Edm.String", bool: "Edm.Boolean", null: "null" }[lit.type];
}

/** Checks property names and operand types against the schema; throws FilterError. */
export function checkFilter(expr: FilterExpr, schema: FilterSchema): void {
  switch (expr.op) {
    case "and":
    case "or":
      checkFilter(expr.left, schema);
      checkFilter(expr.right, schema);
      return;
    case "not":
      checkFilter(expr.expr, schema);
      return;
    case "eq":
    case "ne": {
      const type = schema[expr.property];
      if (type === undefined) throw unknownProperty(expr.property);
      if (!literalFits(type, expr.value)) {
        throw new FilterError(
          `A binary operator with incompatible types was detected. Found operand types '${
            type === "guid" ? "Edm.Guid" : "Edm.Boolean"
          }' and '${edmName(expr.value)}' for operator kind '${
            expr.op === "eq" ? "Equal" : "NotEqual"
          }'.`,
        );
      }
      return;
    }
    case "in": {
      const type = schema[expr.property];
      if (type === undefined) throw unknownProperty(expr.property);
      const bad = expr.values.find((v) =>
        type === "guid" ? !isGuid(v) : v !== "true" && v !== "false"
      );
      if (bad !== undefined) {
        throw new FilterError(`Invalid value '${bad}' for property '${expr.property}'.`);
      }
      return;
    }
  }
}

function literalValue(lit: Literal): string | boolean | null {
  return lit.type === "null" ? null : lit.value;
}

function sameValue(a: string | boolean | null | undefined, b: string | boolean | null): boolean {
  if (typeof a === "string" && typeof b === "string") return a.toLowerCase() === b.toLowerCase();
  return (a ?? null) === b;
}

/** Evaluates a (checked) filter against one record. Pure. */
export function evaluateFilter(expr: FilterExpr, record: FilterRecord): boolean {
  switch (expr.op) {
    case "and":
      return evaluateFilter(expr.left, record) && evaluateFilter(expr.right, record);
    case "or":
      return evaluateFilter(expr.left, record) || evaluateFilter(expr.right, record);
    case "not":
      return !evaluateFilter(expr.expr, record);
    case "eq":
      return sameValue(record[expr.property], literalValue(expr.value));
    case "ne":
      return !sameValue(record[expr.property], literalValue(expr.value));
    case "in":
      return expr.values.some((v) => sameValue(String(record[expr.property]), v));
  }
}
