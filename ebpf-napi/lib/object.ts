// A BPF ELF object: open from bytes, adjust before load, load, take programs and maps out.
import { invalidArgument } from "./errors";
import { BpfMap } from "./map";
import { type NativeObject, native } from "./native";
import { Program } from "./program";

/** Options of BpfObject.open. */
export interface OpenOptions {
  /**
   * Object name. Pass one: it prefixes the names of internal maps (.rodata, .bss, .data) in
   * bpftool and the kernel; libbpf's default for a Buffer is "<address>-<size>".
   */
  name?: string;
  /**
   * Map name -> bpffs path. On load each such map reuses the map pinned at that path when it
   * exists and is compatible (type, key/value size, max_entries, flags), else is created and
   * pinned there (parent directories are created). An incompatible pin fails the load.
   */
  pinMaps?: Record<string, string>;
}

/**
 * An opened (and after load(), loaded) BPF object. program()/map() hand out independent
 * Program/BpfMap handles with their own fds, so the object can be closed right after taking
 * what is needed. close() releases the object's own fds; a finalizer does so if forgotten.
 */
export class BpfObject {
  #native: NativeObject | undefined;
  #loaded = false;

  private constructor(obj: NativeObject) {
    this.#native = obj;
  }

  /** Parses an ELF object from a Buffer (bpf_object__open_mem); the bytes are copied. */
  static open(elf: Buffer, opts: OpenOptions = {}): BpfObject {
    return new BpfObject(native().objectOpen(elf, opts.name ?? null, opts.pinMaps ?? {}));
  }

  /** Sets a map's max_entries; only before load(). */
  setMapMaxEntries(map: string, maxEntries: number): void {
    this.#obj().setMapMaxEntries(map, maxEntries);
  }

  /** Whether load() loads a program (all do by default); only before load(). */
  setAutoload(program: string, autoload: boolean): void {
    this.#obj().setAutoload(program, autoload);
  }

  /**
   * Creates/reuses the maps and loads the programs (bpf_object__load). On failure throws a
   * BpfError whose `log` is the libbpf/verifier log of this load.
   */
  load(): void {
    this.#obj().load();
    this.#loaded = true;
  }

  get loaded(): boolean {
    return this.#loaded;
  }

  /** Names (ELF function names) of the programs in the object. */
  programNames(): string[] {
    return this.#obj().programNames();
  }

  /** Names of the maps in the object (including .rodata/.data/.bss style internal maps). */
  mapNames(): string[] {
    return this.#obj().mapNames();
  }

  /** A new handle on a loaded program (BpfError ENOENT if no such program). */
  program(name: string): Program {
    return new Program(this.#obj().programFd(name), name);
  }

  /** A new handle on a loaded map (BpfError ENOENT if no such map). */
  map(name: string): BpfMap {
    return new BpfMap(this.#obj().mapFd(name), name);
  }

  /** Releases the object (bpf_object__close). Handles taken out stay valid. Idempotent. */
  close(): void {
    const obj = this.#native;
    this.#native = undefined;
    obj?.close();
  }

  #obj(): NativeObject {
    if (this.#native === undefined)
      throw invalidArgument("bpf_object", "used after close()", "EBADF");
    return this.#native;
  }
}
