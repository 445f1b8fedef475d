/**
 * A bounded map that forgets the least recently used entries first: at most
 * `maxSize` entries and, when a `weigh` function is given, at most
 * `maxWeight` in total (e.g. accounts weighed by the command ids they
 * remember), and when `sizeOf` is given, at most `maxBytes` of estimated
 * memory in total.
 */
export interface LruCacheOptions<V> {
  weigh?: (value: V) => number;
  maxWeight?: number;
  /** Estimated bytes an entry keeps alive (key and value). */
  sizeOf?: (value: V) => number;
  maxBytes?: number;
}

interface Entry<V> {
  value: V;
  weight: number;
  bytes: number;
}

export class LruCache<K, V> {
  private readonly entries = new Map<K, Entry<V>>();
  private totalWeight = 0;
  private totalBytes = 0;
  private readonly weigh: (value: V) => number;
  private readonly maxWeight: number;
  private readonly sizeOf: (value: V) => number;
  private readonly maxBytes: number;

  constructor(
    readonly maxSize: number,
    options: LruCacheOptions<V> = {},
  ) {
    this.weigh = options.weigh ?? (() => 0);
    this.maxWeight = options.maxWeight ?? Number.POSITIVE_INFINITY;
    this.sizeOf = options.sizeOf ?? (() => 0);
    this.maxBytes = options.maxBytes ?? Number.POSITIVE_INFINITY;
  }

  get(key: K): V | undefined {
    const entry = this.entries.get(key);
    if (entry === undefined) return undefined;
    this.entries.delete(key);
    this.entries.set(key, entry);
    return entry.value;
  }

  /** Adds or refreshes an entry; call again after the value grew, so its weight and size are counted anew. */
  set(key: K, value: V): void {
    if (this.maxSize <= 0) return;
    this.delete(key);
    const entry = { value, weight: this.weigh(value), bytes: this.sizeOf(value) };
    this.entries.set(key, entry);
    this.totalWeight += entry.weight;
    this.totalBytes += entry.bytes;
    // Evict from the oldest end, never the entry just set.
    while (this.entries.size > this.maxSize || (this.overBudget() && this.entries.size > 1)) {
      const oldest = this.entries.keys().next();
      if (oldest.done || oldest.value === key) break;
      this.delete(oldest.value);
    }
  }

  delete(key: K): void {
    const entry = this.entries.get(key);
    if (entry === undefined) return;
    this.entries.delete(key);
    this.totalWeight -= entry.weight;
    this.totalBytes -= entry.bytes;
  }

  get size(): number {
    return this.entries.size;
  }

  get weight(): number {
    return this.totalWeight;
  }

  /** Estimated bytes of all entries (by `sizeOf`). */
  get bytes(): number {
    return this.totalBytes;
  }

  private overBudget(): boolean {
    return this.totalWeight > this.maxWeight || this.totalBytes > this.maxBytes;
  }
}
