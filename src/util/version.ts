import pkg from '../../package.json' with { type: 'json' };

/** The tool as plans and --version name it: "provision 0.1.0", from package.json (bundled at build time). */
export const TOOL_VERSION = `provision ${pkg.version}`;
