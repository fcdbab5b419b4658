/**
 * Keeps the first `limit` bytes of a body that otherwise streams through untouched, and counts the rest.
 * Holds references to the chunks, never copies them while the body flows.
 */
export class BodyCapture {
  private readonly chunks: Buffer[] = [];
  private captured = 0;
  /** Bytes seen in total. */
  total = 0;

  constructor(readonly limit: number) {}

  add(chunk: Buffer): void {
    this.total += chunk.length;
    if (this.captured >= this.limit) return;
    const take = Math.min(chunk.length, this.limit - this.captured);
    this.chunks.push(take === chunk.length ? chunk : chunk.subarray(0, take));
    this.captured += take;
  }

  /** True when the whole body was kept (it was no larger than the limit). */
  get complete(): boolean {
    return this.total <= this.limit;
  }

  bytes(): Buffer {
    return this.chunks.length === 1 ? (this.chunks[0] as Buffer) : Buffer.concat(this.chunks, this.captured);
  }
}
