// waggle's logger: winston, one JSON object per line, to a file and/or stderr (never stdout,
// which belongs to the CNI result and to command output).
import { closeSync } from "node:fs";
import winston from "winston";
import {
  errorToJson,
  FILE_PROBLEM_MESSAGE,
  isLogLevel,
  type LoggerOptions,
  type LogLevel,
  logLevels,
  openLogFile,
} from "./line-log";

export { errorToJson, isLogLevel, type LoggerOptions, type LogLevel, logLevels };

export type Logger = winston.Logger;

/** Turns Error values of top-level fields ({ error: err }) into plain fields. */
const errorFields = winston.format((info) => {
  for (const [key, value] of Object.entries(info)) {
    if (value instanceof Error) (info as Record<string, unknown>)[key] = errorToJson(value);
  }
  return info;
});

/** Creates the log file (and its directories) as openLogFile does; what went wrong, if anything. */
function logFileProblem(file: string): string | undefined {
  const opened = openLogFile(file);
  if ("problem" in opened) return opened.problem;
  closeSync(opened.fd);
  return undefined;
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
  if (fileProblem !== undefined) logger.warn(FILE_PROBLEM_MESSAGE, { error: fileProblem });
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
