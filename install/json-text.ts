// Where each value sits in a JSON text, so the installer can edit a CNI config as text:
// insert or remove one array element and leave every other byte (order, spacing, number
// spelling, duplicate keys) exactly as its owner wrote it.
//
// The scanner accepts exactly what JSON.parse accepts: parseJsonText() runs JSON.parse
// first and only then records spans, so validity is decided by the engine's parser.

export interface JsonSpan {
  /** Offset of the value's first character. */
  start: number;
  /** Offset just past the value's last character. */
  end: number;
}

export interface JsonMember {
  key: string;
  keyStart: number;
  value: JsonNode;
}

export type JsonNode =
  | (JsonSpan & { kind: "object"; members: JsonMember[] })
  | (JsonSpan & { kind: "array"; elements: JsonNode[] })
  | (JsonSpan & { kind: "scalar" });

export interface ParsedJsonText {
  /** What JSON.parse returns for the whole text. */
  value: unknown;
  root: JsonNode;
}

/** Parses `text`; throws the engine's SyntaxError for anything that is not JSON. */
export function parseJsonText(text: string): ParsedJsonText {
  const value: unknown = JSON.parse(text);
  const scanner = new SpanScanner(text);
  const root = scanner.value();
  return { value, root };
}

/** The value of a node, as JSON.parse reads that slice of the text. */
export function nodeValue(text: string, node: JsonNode): unknown {
  return JSON.parse(text.slice(node.start, node.end));
}

/**
 * The member a JSON.parse-based reader would use for `key` (the last one when the key is
 * repeated), or undefined.
 */
export function memberOf(node: JsonNode, key: string): JsonMember | undefined {
  if (node.kind !== "object") return undefined;
  for (let i = node.members.length - 1; i >= 0; i--) {
    const member = node.members[i] as JsonMember;
    if (member.key === key) return member;
  }
  return undefined;
}

/** The whitespace that starts the line holding offset `at` (used to match indentation). */
export function lineIndent(text: string, at: number): string {
  const lineStart = text.lastIndexOf("\n", at - 1) + 1;
  const match = /^[ \t]*/.exec(text.slice(lineStart, at));
  return match ? match[0] : "";
}

/**
 * Adds `indent` after every line break of a JSON value's text. Safe for any JSON: a raw
 * line break can only be whitespace between tokens (strings escape theirs), so meaning is
 * unchanged, and unindent() with the same prefix gives back the exact bytes.
 */
export function indentJson(valueText: string, indent: string): string {
  return valueText.replace(/\n/g, `\n${indent}`);
}

/**
 * Reverses indentJson(): removes `indent` after every line break where it is present (a line
 * someone else re-indented keeps its own whitespace, which is still valid JSON).
 */
export function unindentJson(valueText: string, indent: string): string {
  if (indent === "") return valueText;
  return valueText.split(`\n${indent}`).join("\n");
}

class SpanScanner {
  private pos = 0;

  constructor(private readonly text: string) {}

  value(): JsonNode {
    this.skipSpace();
    const start = this.pos;
    const ch = this.text[this.pos];
    if (ch === "{") return this.object(start);
    if (ch === "[") return this.array(start);
    if (ch === '"') {
      this.string();
      return { kind: "scalar", start, end: this.pos };
    }
    while (this.pos < this.text.length && !/[\s,\]}:]/.test(this.text[this.pos] as string)) {
      this.pos++;
    }
    if (this.pos === start) throw new SyntaxError(`unexpected character at offset ${start}`);
    return { kind: "scalar", start, end: this.pos };
  }

  private object(start: number): JsonNode {
    this.pos++; // {
    const members: JsonMember[] = [];
    this.skipSpace();
    if (this.text[this.pos] === "}") {
      this.pos++;
      return { kind: "object", start, end: this.pos, members };
    }
    for (;;) {
      this.skipSpace();
      const keyStart = this.pos;
      this.string();
      const key = JSON.parse(this.text.slice(keyStart, this.pos)) as string;
      this.skipSpace();
      this.expect(":");
      const value = this.value();
      members.push({ key, keyStart, value });
      this.skipSpace();
      if (this.text[this.pos] === ",") {
        this.pos++;
        continue;
      }
      this.expect("}");
      return { kind: "object", start, end: this.pos, members };
    }
  }

  private array(start: number): JsonNode {
    this.pos++; // [
    const elements: JsonNode[] = [];
    this.skipSpace();
    if (this.text[this.pos] === "]") {
      this.pos++;
      return { kind: "array", start, end: this.pos, elements };
    }
    for (;;) {
      elements.push(this.value());
      this.skipSpace();
      if (this.text[this.pos] === ",") {
        this.pos++;
        continue;
      }
      this.expect("]");
      return { kind: "array", start, end: this.pos, elements };
    }
  }

  private string(): void {
    this.expect('"');
    while (this.pos < this.text.length) {
      const ch = this.text[this.pos];
      if (ch === "\\") {
        this.pos += 2;
      } else if (ch === '"') {
        this.pos++;
        return;
      } else {
        this.pos++;
      }
    }
    throw new SyntaxError("unterminated string");
  }

  private skipSpace(): void {
    while (this.pos < this.text.length && " \t\n\r".includes(this.text[this.pos] as string)) {
      this.pos++;
    }
  }

  private expect(ch: string): void {
    if (this.text[this.pos] !== ch) {
      throw new SyntaxError(`expected '${ch}' at offset ${this.pos}`);
    }
    this.pos++;
  }
}
