// waggle's logger: winston, one JSON object per line, to a file and/or stderr (never stdout,
// which belongs to the CNI result and to command output).
import { closeSync, constants, fstatSync, openSync } from "node:fs";
import { dirname } from "node:path";
import winston from "winston";
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

export type Logger = winston.Logger;

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

/** Turns Error values of top-level fields ({ error: err }) into plain fields. */
const errorFields = winston.format((info) => {
  for (const [key, value] of Object.entries(info)) {
    if (value instanceof Error) (info as Record<string, unknown>)[key] = errorToJson(value);
  }
  return info;
});

/**
 * Creates the log file (and its directories) for appending; what went wrong, if anything. The
 * open never blocks (a FIFO without a reader would hold the pod's DEL forever) and anything but
 * a regular file is refused.
 */
function logFileProblem(file: string): string | undefined {
  try {
    makeDirectories(dirname(file), 0o755);
    const { O_WRONLY, O_APPEND, O_CREAT, O_NONBLOCK } = constants;
    // explicit mode: a umask of 000 must not make it 0666
    const fd = openSync(file, O_WRONLY | O_APPEND | O_CREAT | O_NONBLOCK, 0o640);
    try {
      if (!fstatSync(fd).isFile()) return `${file}: not a regular file`;
    } finally {
      closeSync(fd);
    }
    return undefined;
  } catch (e) {
    return `${file}: ${(e as Error).message}`;
  }
}

/**
 * A JSON-lines logger. With neither a file nor stderr it drops everything. A file that cannot
 * be written never fails or hangs this: the logger falls back to stderr.
 */
export function createLogger(options: LoggerOptions): Logger {
  if (!isLogLevel(options.level)) {
    throw new Error(
      `invalid log level ${JSON.stringify(options.level)}: use one of ${logLevels.join(", ")}`,
    );
  }
  const fileProblem = options.file === undefined ? undefined : logFileProblem(options.file);
  const file = fileProblem === undefined ? options.file : undefined;
  const transports: winston.transport[] = [];
  if (file !== undefined)
    transports.push(
      new winston.transports.File({
        filename: file,
        maxsize: options.maxSizeBytes,
        maxFiles: options.maxFiles,
        // the newest lines stay in `file`; older ones move to file1, file2 ...
        tailable: options.maxFiles !== undefined,
      }),
    );
  if (options.stderr || fileProblem !== undefined)
    transports.push(new winston.transports.Stream({ stream: process.stderr }));
  const logger = winston.createLogger({
    level: options.level,
    levels: { error: 0, warn: 1, info: 2, debug: 3 },
    format: winston.format.combine(
      winston.format.timestamp(),
      winston.format.errors({ stack: true }),
      errorFields(),
      winston.format.json(),
    ),
    defaultMeta: options.defaultMeta,
    transports,
    silent: transports.length === 0,
  });
  if (fileProblem !== undefined)
    logger.warn("cannot write the log file; logging to stderr only", { error: fileProblem });
  return logger;
}

/** Ends the logger and resolves once every transport has written what it was given. */
export function closeLogger(logger: Logger): Promise<void> {
  return new Promise((resolve) => {
    const pending = logger.transports.filter((t) => t instanceof winston.transports.File);
    if (pending.length === 0) {
      logger.end();
      resolve();
      return;
    }
    let left = pending.length;
    for (const t of pending) {
      t.on("finish", () => {
        left -= 1;
        if (left === 0) resolve();
      });
    }
    logger.end();
  });
}
