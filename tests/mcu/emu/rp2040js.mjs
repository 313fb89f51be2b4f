// Finds the pinned rp2040js (tests/mcu/emu/package.json) outside the repository and imports the
// parts of it the runner uses. The repository holds no node_modules: `make setup-mcu` installs
// the package into <repo>/.cache/mcu/npm/node_modules, and $MBNODE_NODE_MODULES can point
// elsewhere.

import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '..', '..', '..');

export const nodeModules = process.env.MBNODE_NODE_MODULES || path.join(repo, '.cache', 'mcu', 'npm', 'node_modules');
const dist = path.join(nodeModules, 'rp2040js', 'dist', 'esm');

if (!fs.existsSync(path.join(dist, 'index.js'))) {
  process.stderr.write(`pico: rp2040js not found in ${nodeModules} (run make setup-mcu, or set MBNODE_NODE_MODULES)\n`);
  process.exit(2);
}

async function load(rel) {
  return import(pathToFileURL(path.join(dist, rel)).href);
}

const index = await load('index.js');
const clockModule = await load('clock/simulation-clock.js');
const irqModule = await load('irq.js');
const gpioModule = await load('gpio-pin.js');

export const { RP2040, BasePeripheral } = index;
export const { SimulationClock } = clockModule;
export const { IRQ } = irqModule;
export const { GPIOPinState } = gpioModule;
export const version = JSON.parse(fs.readFileSync(path.join(nodeModules, 'rp2040js', 'package.json'), 'utf8')).version;
