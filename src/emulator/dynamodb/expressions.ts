// The part of DynamoDB's expression language the device table's users send, with DynamoDB's
// semantics ("Condition and filter expressions", "Update expressions", "Projection expressions",
// Amazon DynamoDB Developer Guide): condition and filter expressions with comparisons
// (= <> < <= > >=), attribute_exists, attribute_not_exists, begins_with, AND, OR, NOT and
// parentheses; update expressions with SET (a value, or if_not_exists(path, value)) and REMOVE;
// projections of top-level attributes; #name and :value placeholders. Every placeholder given
// must be used, as DynamoDB insists. Anything else is a ValidationException, never a guess.
import { DynamoDbError } from './errors.ts';

export type AttributeValue = Record<string, unknown>;
export type Item = Record<string, AttributeValue>;

export interface Placeholders {
  names?: Record<string, string>;
  values?: Record<string, AttributeValue>;
}

type Token = { kind: 'name' | 'alias' | 'value' | 'punct'; text: string };

const invalid = (message: string): never => {
  throw new DynamoDbError('ValidationException', message);
};

function tokenize(text: string, what: string): Token[] {
  const tokens: Token[] = [];
  const re = /\s*(?:(#[A-Za-z0-9_]+)|(:[A-Za-z0-9_]+)|([A-Za-z_][A-Za-z0-9_]*)|(<>|<=|>=|[=<>(),]))/y;
  let at = 0;
  while (at < text.length) {
    if (/^\s*$/.test(text.slice(at))) break;
    re.lastIndex = at;
    const m = re.exec(text);
    if (!m) invalid(`Invalid ${what}: Syntax error; token: "${text.slice(at).trim().split(/\s/)[0]}"`);
    at = re.lastIndex;
    if (m![1]) tokens.push({ kind: 'alias', text: m![1] });
    else if (m![2]) tokens.push({ kind: 'value', text: m![2] });
    else if (m![3]) tokens.push({ kind: 'name', text: m![3] });
    else tokens.push({ kind: 'punct', text: m![4]! });
  }
  return tokens;
}

/** Tracks which placeholders an expression used, so unused ones can be refused. */
export class Usage {
  readonly names = new Set<string>();
  readonly values = new Set<string>();

  constructor(readonly placeholders: Placeholders) {}

  name(token: Token): string {
    if (token.kind === 'name') return token.text;
    const resolved = this.placeholders.names?.[token.text];
    if (resolved === undefined) invalid(`An expression attribute name used in the document path is not defined; attribute name: ${token.text}`);
    this.names.add(token.text);
    return resolved!;
  }

  value(text: string): AttributeValue {
    const v = this.placeholders.values?.[text];
    if (v === undefined) invalid(`An expression attribute value used in expression is not defined; attribute value: ${text}`);
    this.values.add(text);
    return v!;
  }

  /** DynamoDB refuses placeholders that no expression of the request used. */
  checkAllUsed(): void {
    const unusedNames = Object.keys(this.placeholders.names ?? {}).filter((n) => !this.names.has(n));
    if (unusedNames.length) invalid(`Value provided in ExpressionAttributeNames unused in expressions: keys: {${unusedNames.join(', ')}}`);
    const unusedValues = Object.keys(this.placeholders.values ?? {}).filter((v) => !this.values.has(v));
    if (unusedValues.length) invalid(`Value provided in ExpressionAttributeValues unused in expressions: keys: {${unusedValues.join(', ')}}`);
  }
}

class Parser {
  #at = 0;
  constructor(
    private readonly tokens: Token[],
    private readonly usage: Usage,
    private readonly what: string,
  ) {}

  peek(offset = 0): Token | undefined {
    return this.tokens[this.#at + offset];
  }

  next(): Token {
    const t = this.tokens[this.#at++];
    if (!t) invalid(`Invalid ${this.what}: Syntax error; token: <EOF>`);
    return t!;
  }

  expect(text: string): void {
    const t = this.next();
    if (t.text !== text) invalid(`Invalid ${this.what}: Syntax error; token: "${t.text}", expected "${text}"`);
  }

  keyword(word: string): boolean {
    const t = this.peek();
    if (t?.kind === 'name' && t.text.toUpperCase() === word) {
      this.#at++;
      return true;
    }
    return false;
  }

  done(): boolean {
    return this.#at >= this.tokens.length;
  }

  path(): string {
    const t = this.next();
    if (t.kind !== 'name' && t.kind !== 'alias') invalid(`Invalid ${this.what}: expected an attribute name, got "${t.text}"`);
    return this.usage.name(t);
  }
}

// ---- conditions

type Operand = { path: string } | { value: AttributeValue };
export type Condition = (item: Item | undefined) => boolean;

function parseCondition(p: Parser, usage: Usage, what: string): Condition {
  const resolve = (o: Operand, item: Item | undefined): AttributeValue | undefined => ('value' in o ? o.value : item?.[o.path]);
  const operandOf = (): Operand => {
    const t = p.peek();
    if (t?.kind === 'value') return { value: usage.value(p.next().text) };
    return { path: p.path() };
  };
  const primary = (): Condition => {
    const t = p.peek();
    if (t?.text === '(') {
      p.next();
      const inner = or();
      p.expect(')');
      return inner;
    }
    if (t?.kind === 'name' && p.peek(1)?.text === '(') {
      const fn = p.next().text;
      p.expect('(');
      if (fn === 'attribute_exists' || fn === 'attribute_not_exists') {
        const path = p.path();
        p.expect(')');
        return fn === 'attribute_exists' ? (item) => item?.[path] !== undefined : (item) => item?.[path] === undefined;
      }
      if (fn === 'begins_with') {
        const a = operandOf();
        p.expect(',');
        const b = operandOf();
        p.expect(')');
        return (item) => {
          const x = resolve(a, item);
          const y = resolve(b, item);
          return typeof x?.S === 'string' && typeof y?.S === 'string' && x.S.startsWith(y.S);
        };
      }
      return invalid(`Invalid ${what}: the function is not supported by this emulator: ${fn}`);
    }
    const left = operandOf();
    const op = p.next().text;
    if (!['=', '<>', '<', '<=', '>', '>='].includes(op)) invalid(`Invalid ${what}: Syntax error; token: "${op}"`);
    const right = operandOf();
    return (item) => compare(resolve(left, item), op, resolve(right, item));
  };
  const not = (): Condition => {
    if (p.keyword('NOT')) {
      const inner = not();
      return (item) => !inner(item);
    }
    return primary();
  };
  const and = (): Condition => {
    let c = not();
    while (p.keyword('AND')) {
      const a = c;
      const b = not();
      c = (item) => a(item) && b(item);
    }
    return c;
  };
  const or = (): Condition => {
    let c = and();
    while (p.keyword('OR')) {
      const a = c;
      const b = and();
      c = (item) => a(item) || b(item);
    }
    return c;
  };
  const condition = or();
  if (!p.done()) invalid(`Invalid ${what}: Syntax error; token: "${p.peek()!.text}"`);
  return condition;
}

/** DynamoDB's comparison: a missing side or a type mismatch is false (except <>, which is true). */
function compare(a: AttributeValue | undefined, op: string, b: AttributeValue | undefined): boolean {
  if (op === '<>') return !equal(a, b);
  if (op === '=') return equal(a, b);
  if (!a || !b) return false;
  const x = 'S' in a ? a.S : 'N' in a ? Number(a.N) : undefined;
  const y = 'S' in b ? b.S : 'N' in b ? Number(b.N) : undefined;
  if (x === undefined || y === undefined || typeof x !== typeof y) return false;
  const [l, r] = [x as string | number, y as string | number];
  return op === '<' ? l < r : op === '<=' ? l <= r : op === '>' ? l > r : l >= r;
}

function equal(a: AttributeValue | undefined, b: AttributeValue | undefined): boolean {
  if (!a || !b) return false;
  return JSON.stringify(canonical(a)) === JSON.stringify(canonical(b));
}

const canonical = (v: unknown): unknown =>
  v && typeof v === 'object' && !Array.isArray(v)
    ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([x], [y]) => (x < y ? -1 : 1)).map(([k, x]) => [k, canonical(x)]))
    : Array.isArray(v)
      ? v.map(canonical)
      : v;

export function compileCondition(expression: string, usage: Usage, what = 'ConditionExpression'): Condition {
  const tokens = tokenize(expression, what);
  if (!tokens.length) invalid(`Invalid ${what}: The expression can not be empty;`);
  return parseCondition(new Parser(tokens, usage, what), usage, what);
}

// ---- updates

export type Update = (item: Item) => Item;

/** SET path = value | if_not_exists(path, value), ... and REMOVE path, ...; each clause once. */
export function compileUpdate(expression: string, usage: Usage, keyNames: string[]): { apply: Update; paths: string[] } {
  const p = new Parser(tokenize(expression, 'UpdateExpression'), usage, 'UpdateExpression');
  // Every step reads the item as it was before the update (as DynamoDB's SET does) and writes the result.
  const steps: ((before: Item, after: Item) => void)[] = [];
  const paths: string[] = [];
  const seenClauses = new Set<string>();
  const touch = (path: string) => {
    if (keyNames.includes(path)) invalid(`One or more parameter values were invalid: Cannot update attribute ${path}. This attribute is part of the key`);
    if (paths.includes(path)) invalid(`Invalid UpdateExpression: Two document paths overlap with each other; must remove or rewrite one of these paths; path one: [${path}], path two: [${path}]`);
    paths.push(path);
  };
  if (p.done()) invalid('Invalid UpdateExpression: The expression can not be empty;');
  while (!p.done()) {
    const clause = p.next().text.toUpperCase();
    if (clause !== 'SET' && clause !== 'REMOVE') invalid(`Invalid UpdateExpression: Syntax error; token: "${clause}" (this emulator supports SET and REMOVE)`);
    if (seenClauses.has(clause)) invalid(`Invalid UpdateExpression: The "${clause}" section can only be used once in an update expression;`);
    seenClauses.add(clause);
    do {
      const path = p.path();
      touch(path);
      if (clause === 'REMOVE') {
        steps.push((_before, after) => delete after[path]);
        continue;
      }
      p.expect('=');
      const t = p.peek();
      if (t?.kind === 'name' && t.text === 'if_not_exists') {
        p.next();
        p.expect('(');
        const source = p.path();
        p.expect(',');
        const fallback = usage.value(p.next().text);
        p.expect(')');
        steps.push((before, after) => (after[path] = before[source] ?? fallback));
      } else if (t?.kind === 'value') {
        const value = usage.value(p.next().text);
        steps.push((_before, after) => (after[path] = value));
      } else {
        const source = p.path();
        steps.push((before, after) => {
          after[path] = before[source] ?? invalid('The provided expression refers to an attribute that does not exist in the item');
        });
      }
    } while (p.peek()?.text === ',' && p.next());
  }
  return {
    apply: (before) => {
      const after = { ...before };
      for (const step of steps) step(before, after);
      return after;
    },
    paths,
  };
}

/** Top-level attribute names of a ProjectionExpression. */
export function compileProjection(expression: string, usage: Usage): string[] {
  const p = new Parser(tokenize(expression, 'ProjectionExpression'), usage, 'ProjectionExpression');
  const names: string[] = [];
  do names.push(p.path());
  while (p.peek()?.text === ',' && p.next());
  if (!p.done()) invalid(`Invalid ProjectionExpression: Syntax error; token: "${p.peek()!.text}"`);
  return names;
}
