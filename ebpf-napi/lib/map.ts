// A BPF map, held by fd: lookups, updates, deletes and iteration with Buffers.
import { invalidArgument } from "./errors";
import { FdHandle, openPinnedAs } from "./fd";
import { native } from "./native";
import type { MapInfo, MapType } from "./types";

/** How update() treats an existing/missing key (BPF_ANY, BPF_NOEXIST, BPF_EXIST). */
export type UpdateMode = "any" | "noexist" | "exist";

const updateFlags: Record<UpdateMode, number> = { any: 0, noexist: 1, exist: 2 };

const perCpuTypes: ReadonlySet<MapType> = new Set<MapType>([
  "percpu_hash",
  "percpu_array",
  "lru_percpu_hash",
  "percpu_cgroup_storage",
]);

/** Options of BpfMap.create (bpf_map_create). */
export interface MapCreateOptions {
  type: MapType;
  name?: string;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  /** BPF_F_* flags, e.g. 1 (BPF_F_NO_PREALLOC) for lpm_trie. */
  flags?: number;
}

/** One entry for updatePinnedMaps: `value` stored under `key` in the map pinned at `pin`. */
export interface PinnedMapEntry {
  pin: string;
  key: Buffer;
  /** As BpfMap.update takes it (per-CPU maps: one slot per possible CPU). */
  value: Buffer;
}

/**
 * Stores each entry (BPF_ANY), in order, opening each pinned map once, in one call: what
 * BpfMap.openPinned(pin).update(key, value) does entry by entry, without a handle per map.
 * Stops at the first failure with a BpfError naming the pin (a pin that holds no map: op
 * "bpf_obj_get", EINVAL); the entries before it stay written.
 */
export function updatePinnedMaps(entries: readonly PinnedMapEntry[]): void {
  native().mapsUpdatePinned(entries);
}

/** The number of possible CPUs (libbpf_num_possible_cpus): the per-CPU value count. */
export function possibleCpus(): number {
  return native().possibleCpus();
}

/**
 * A map. Owns its fd: close() it (pinned maps stay pinned).
 * Keys are Buffers of exactly info.keySize bytes. Values are Buffers of valueLength bytes:
 * info.valueSize, or for per-CPU maps possibleCpus() slots of info.valueSize rounded up to 8.
 */
export class BpfMap extends FdHandle {
  readonly name: string;
  readonly info: MapInfo;
  /** True for per-CPU map types (values carry one slot per possible CPU). */
  readonly perCpu: boolean;
  /** Bytes of a value as lookup() returns and update() expects it. */
  readonly valueLength: number;

  /** @internal takes ownership of fd. */
  constructor(fd: number, name?: string) {
    super(fd);
    try {
      this.info = native().mapInfo(fd);
    } catch (err) {
      this.close();
      throw err;
    }
    this.name = name ?? this.info.name;
    this.perCpu = perCpuTypes.has(this.info.type);
    this.valueLength = this.perCpu
      ? possibleCpus() * (Math.ceil(this.info.valueSize / 8) * 8)
      : this.info.valueSize;
  }

  /** Opens a map pinned in bpffs (bpf_obj_get). */
  static openPinned(path: string): BpfMap {
    return new BpfMap(openPinnedAs("map", path));
  }

  /** Opens a map by its kernel id (bpf_map_get_fd_by_id). */
  static fromId(id: number): BpfMap {
    return new BpfMap(native().mapFdById(id));
  }

  /** Creates a map outside any object (bpf_map_create). */
  static create(opts: MapCreateOptions): BpfMap {
    const fd = native().mapCreate(
      opts.type,
      opts.name ?? null,
      opts.keySize,
      opts.valueSize,
      opts.maxEntries,
      opts.flags ?? 0,
    );
    return new BpfMap(fd, opts.name);
  }

  /** The value stored under key, or null when there is none (bpf_map_lookup_elem). */
  lookup(key: Buffer): Buffer | null {
    return native().mapLookup(this.fd, key, this.info.keySize, this.valueLength);
  }

  /** Stores value under key (bpf_map_update_elem). */
  update(key: Buffer, value: Buffer, mode: UpdateMode = "any"): void {
    const flags = updateFlags[mode];
    if (flags === undefined) throw invalidArgument("bpf_map_update_elem", `unknown mode ${mode}`);
    native().mapUpdate(this.fd, key, this.info.keySize, value, this.valueLength, flags);
  }

  /** Deletes key; false when it was not there (bpf_map_delete_elem). */
  delete(key: Buffer): boolean {
    return native().mapDelete(this.fd, key, this.info.keySize);
  }

  /** All keys, in kernel order (bpf_map_get_next_key). */
  *keys(): Generator<Buffer> {
    const n = native();
    let key = n.mapNextKey(this.fd, null, this.info.keySize);
    while (key !== null) {
      yield key;
      key = n.mapNextKey(this.fd, key, this.info.keySize);
    }
  }

  /** All [key, value] pairs; keys deleted during the walk are skipped. */
  *entries(): Generator<[Buffer, Buffer]> {
    for (const key of this.keys()) {
      const value = this.lookup(key);
      if (value !== null) yield [key, value];
    }
  }

  protected describe(): string {
    return `map ${this.name}`.trimEnd();
  }
}
