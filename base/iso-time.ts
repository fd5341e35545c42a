// UTC timestamps as Date#toISOString writes them ("2026-12-06T21:50:12.345Z"), built from the
// UTC getters: toISOString's first call in a process loads the machine's time zone (it reads
// /etc/localtime), about 1 ms of every logged CNI call here, which a UTC timestamp never needs.

function pad(n: number, width: number): string {
  return String(n).padStart(width, "0");
}

/** `date` (now by default) as toISOString writes it, for the years 0 to 9999. */
export function isoTime(date: Date = new Date()): string {
  return (
    `${pad(date.getUTCFullYear(), 4)}-${pad(date.getUTCMonth() + 1, 2)}-${pad(date.getUTCDate(), 2)}` +
    `T${pad(date.getUTCHours(), 2)}:${pad(date.getUTCMinutes(), 2)}:${pad(date.getUTCSeconds(), 2)}` +
    `.${pad(date.getUTCMilliseconds(), 3)}Z`
  );
}
