// Its own module: the CLI's option help names it without loading the engine (src/cli/options.ts).

/**
 * Hosts worked on at once when neither --forks nor provision.yml says (Ansible's is 5). Each host in
 * flight holds an SSH connection (ssh2's state, socket and cipher buffers) and its outputs; beyond
 * this many, a host's connection is closed while it waits (see runPlaybook). Measured in README "Speed".
 */
export const DEFAULT_FORKS = 200;
