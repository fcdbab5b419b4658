#!/usr/bin/env node
'use strict';
// The ce-audit command of a clone or an image: the compiled CLI in dist/ (npm run build makes it).
const { existsSync } = require('node:fs');
const path = require('node:path');

const entry = path.join(__dirname, '..', 'dist', 'cli', 'main.js');
if (!existsSync(entry)) {
  process.stderr.write(`ce-audit: ${entry} is missing: run "npm run build" in ${path.dirname(__dirname)} first\n`);
  process.exit(3);
}
require(entry).cli();
