// Types of scripts/startup-patches.mjs for the tests that import it.
import type { Plugin } from 'esbuild';

export const SIMPLE_TEXT: Record<7 | 8, string>;
export const SINGLE_GRAPHEMES: string;
export const startupPatches: Plugin[];
