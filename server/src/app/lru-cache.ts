/**
 * A bounded map that forgets the least recently used entries first: at most
 * `maxSize` entries and, when a `weigh` function is given, at most
 * `maxWeight` in total (e.g. accounts weighed by the command ids they remember).
 */
export interface LruCacheOptions<V> {
  weigh?: (value: V) => number;
  maxWeight?: number;
}

export class LruCache<K, V> {
  private readonly entries = new Map<K, { value: V; weight: number }>();
  private totalWeight = 0;
  private readonly weigh: (value: V) => number;
  private readonly maxWeight: number;

  constructor(
    readonly maxSize: number,
    options: LruCacheOptions<V> = {},
  ) {
    this.weigh = options.weigh ?? (() => 0);
    this.maxWeight = options.maxWeight ?? Number.POSITIVE_INFINITY;
  }

  get(key: K): V | undefined {
    const entry = this.entries.get(key);
    if (entry === undefined) return undefined;
    this.entries.delete(key);
    this.entries.set(key, entry);
    return entry.value;
  }

  /** Adds or refreshes an entry; call again after the value grew, so its weight is counted anew. */
  set(key: K, value: V): void {
    if (this.maxSize <= 0) return;
    this.delete(key);
    const weight = this.weigh(value);
    this.entries.set(key, { value, weight });
    this.totalWeight += weight;
    // Evict from the oldest end, never the entry just set.
    while (this.entries.size > this.maxSize || (this.totalWeight > this.maxWeight && this.entries.size > 1)) {
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
  }

  get size(): number {
    return this.entries.size;
  }

  get weight(): number {
    return this.totalWeight;
  }
}
