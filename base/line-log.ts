// The CNI plugin's log: the JSON lines base/log.ts's winston logger writes (the same fields, keys
// sorted as its json format sorts them), written synchronously, one write per line. A CNI call
// logs a line or two and exits: loading and setting up winston cost it about 20 ms of its start
// (scripts/profile-cni), this nothing measurable. Also what both loggers share: the levels,
// how an Error becomes fields, and the checks a log file must pass.
import {
  closeSync,
  constants,
  existsSync,
  fstatSync,
  openSync,
  renameSync,
  writeSync,
} from "node:fs";
import { basename, dirname, extname, join } from "node:path";
import { configure } from "safe-stable-stringify";
import { isoTime } from "./iso-time";
import { makeDirectories } from "./make-directories";

export type LogLevel = "error" | "warn" | "info" | "debug";

export const logLevels: readonly LogLevel[] = ["error", "warn", "info", "debug"];

export interface LoggerOptions {
  /** Lowest level written. */
  level: LogLevel;
  /**
   * Append JSON lines to this file (its directories are created). When it cannot be created
   * or opened, the lines go to stderr instead, after a warning that names the problem.
   */
  file?: string;
  /** Rotate the file when it reaches this many bytes (winston File maxsize). */
  maxSizeBytes?: number;
  /** How many log files to keep, the current one included (winston File maxFiles). */
  maxFiles?: number;
  /** Write JSON lines to stderr. */
  stderr?: boolean;
  /** Fields added to every line (e.g. { containerId }). */
  defaultMeta?: Record<string, unknown>;
}

/** True when `value` names a log level. */
export function isLogLevel(value: unknown): value is LogLevel {
  return typeof value === "string" && (logLevels as readonly string[]).includes(value);
}

/** An Error as plain fields: JSON.stringify would write an Error as {}. */
export function errorToJson(err: Error): Record<string, unknown> {
  const e = err as Error & { code?: unknown; errno?: unknown; op?: unknown };
  const out: Record<string, unknown> = { name: e.name, message: e.message };
  for (const key of ["code", "errno", "op"] as const) if (e[key] !== undefined) out[key] = e[key];
  if (e.stack !== undefined) out.stack = e.stack;
  return out;
}

/** The warning both loggers write first when the file cannot be used. */
export const FILE_PROBLEM_MESSAGE = "cannot write the log file; logging to stderr only";

/**
 * Creates the log file (and its directories) and opens it for appending; the descriptor, or
 * what went wrong. The open never blocks (a FIFO without a reader would hold the pod's DEL
 * forever) and anything but a regular file is refused.
 */
export function openLogFile(file: string): { fd: number } | { problem: string } {
  try {
    makeDirectories(dirname(file), 0o755);
    const { O_WRONLY, O_APPEND, O_CREAT, O_NONBLOCK } = constants;
    // explicit mode: a umask of 000 must not make it 0666
    const fd = openSync(file, O_WRONLY | O_APPEND | O_CREAT | O_NONBLOCK, 0o640);
    if (!fstatSync(fd).isFile()) {
      closeSync(fd);
      return { problem: `${file}: not a regular file` };
    }
    return { fd };
  } catch (e) {
    return { problem: `${file}: ${(e as Error).message}` };
  }
}

const LEVEL_RANK: Record<LogLevel, number> = { error: 0, warn: 1, info: 2, debug: 3 };

// As logform's json format: keys sorted, a bigint as its decimal string.
const stringify = configure({});
const replacer = (_key: string, value: unknown) =>
  typeof value === "bigint" ? value.toString() : value;

/** A synchronous JSON-lines log. */
export interface LineLog {
  error(message: string, meta?: Record<string, unknown>): void;
  warn(message: string, meta?: Record<string, unknown>): void;
  info(message: string, meta?: Record<string, unknown>): void;
  debug(message: string, meta?: Record<string, unknown>): void;
  /** Closes the file; lines logged after this go to stderr only (when it is on). */
  close(): void;
}

/**
 * A JSON-lines log written synchronously: each line is on disk (in the page cache) when the
 * call returns. With neither a file nor stderr it drops everything. A file that cannot be
 * written never fails or hangs this: the lines go to stderr. Rotation as winston's tailable
 * File transport does it: when a line would take the file past maxSizeBytes, cni.log becomes
 * cni1.log, cni1.log cni2.log ... up to maxFiles - 1.
 */
export function createLineLog(options: LoggerOptions): LineLog {
  if (!isLogLevel(options.level)) {
    throw new Error(
      `invalid log level ${JSON.stringify(options.level)}: use one of ${logLevels.join(", ")}`,
    );
  }
  const rank = LEVEL_RANK[options.level];
  const opened = options.file === undefined ? undefined : openLogFile(options.file);
  let fd = opened !== undefined && "fd" in opened ? opened.fd : undefined;
  const toStderr = options.stderr === true || (opened !== undefined && "problem" in opened);
  let size = fd === undefined ? 0 : fstatSync(fd).size;

  const rotate = (file: string) => {
    if (fd !== undefined) closeSync(fd);
    fd = undefined;
    const dir = dirname(file);
    const ext = extname(file);
    const base = basename(file, ext);
    const nth = (n: number) => join(dir, `${base}${n}${ext}`);
    for (let n = (options.maxFiles ?? 1) - 1; n > 1; n--) {
      if (existsSync(nth(n - 1))) renameSync(nth(n - 1), nth(n));
    }
    renameSync(file, nth(1));
    const again = openLogFile(file);
    if ("fd" in again) fd = again.fd;
    size = 0;
  };

  const write = (line: string) => {
    if (fd !== undefined && options.file !== undefined) {
      const bytes = Buffer.byteLength(line);
      try {
        const max = options.maxSizeBytes;
        if (max !== undefined && size > 0 && size + bytes > max) rotate(options.file);
        if (fd !== undefined) {
          writeSync(fd, line);
          size += bytes;
        }
      } catch {
        // a full disk or a file removed under us is not the pod's failure
      }
    }
    if (toStderr) {
      try {
        writeSync(2, line);
      } catch {
        // stderr closed: nothing left to tell
      }
    }
  };

  const at =
    (level: LogLevel) =>
    (message: string, meta: Record<string, unknown> = {}): void => {
      if (LEVEL_RANK[level] > rank || (fd === undefined && !toStderr)) return;
      const entry: Record<string, unknown> = { ...options.defaultMeta, ...meta };
      for (const [key, value] of Object.entries(entry)) {
        if (value instanceof Error) entry[key] = errorToJson(value);
      }
      Object.assign(entry, { level, message, timestamp: isoTime() });
      write(`${stringify(entry, replacer)}\n`);
    };

  const log: LineLog = {
    error: at("error"),
    warn: at("warn"),
    info: at("info"),
    debug: at("debug"),
    close() {
      if (fd !== undefined) closeSync(fd);
      fd = undefined;
    },
  };
  if (opened !== undefined && "problem" in opened) {
    log.warn(FILE_PROBLEM_MESSAGE, { error: opened.problem });
  }
  return log;
}
