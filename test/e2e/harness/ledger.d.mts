// Types of test/e2e/harness/ledger.mjs (plain JavaScript, so that test/e2e/run.mjs can use it).

export interface LabConfig {
  /** The cached images (outside the repository; kept between runs). */
  cacheDir: string;
  /** Every host's folder and the ledger of what was started: removed when the run ends. */
  runDir: string;
  /** The bridge joining the hosts' network namespaces (and this machine, at machineAddress). */
  bridge: string;
  /** This machine's address on the bridge; the hosts' addresses follow it in the same block. */
  machineAddress: string;
  prefixLength: number;
  /** Debian's mirror, used only to build the image (the hosts themselves reach nothing). */
  mirror: string;
}

export function labConfig(env?: NodeJS.ProcessEnv): LabConfig;
export function hostsDir(config: LabConfig): string;
export function hostDir(config: LabConfig, name: string): string;
export function hostRoot(config: LabConfig, name: string): string;
export function recordProcess(file: string, pid: number, marker: string): void;
export function recordBridge(config: LabConfig): void;
export function spawnInOwnCgroup<T>(config: LabConfig, machine: string, start: () => T): T;
export function removeHostCgroups(config: LabConfig, machine: string): void;
export function findLeftovers(config: LabConfig): string[];
export function cleanUp(config: LabConfig): string[];
export function liveOwner(config: LabConfig): number | undefined;
export function takeOwnership(config: LabConfig, pid?: number): { leftovers: string[]; cleaned: string[] };
