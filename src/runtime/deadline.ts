/** What `within` returns when the deadline passed first. */
export const LATE = Symbol('late');

/** The promise's value, or LATE once `deadline` (epoch ms) passes first. The timer never keeps the process alive. */
export async function within<T>(promise: Promise<T>, deadline: number): Promise<T | typeof LATE> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<typeof LATE>((resolve) => {
    timer = setTimeout(() => resolve(LATE), Math.max(0, deadline - Date.now()));
    timer.unref();
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}
