import type { Client } from 'ssh2';

/** The part of ssh2's protocol object this reaches into (ssh2 1.x: `client._protocol._handlers`). */
interface ProtocolHandlers {
  _protocol?: { _handlers?: { GLOBAL_REQUEST?: (proto: { requestSuccess(): void }, name: string, wantReply: boolean, data: unknown) => void } };
}

/**
 * After login, OpenSSH's sshd announces every host key it has (`hostkeys-00@openssh.com`) and ssh2
 * answers by asking the server to prove each one (`hostkeys-prove-00@openssh.com`): the host signs
 * with every key (RSA among them) and the controller verifies every signature, on each connect, for
 * an event (`hostkeys`) nothing here listens to. Profiled at 100 hosts (README "Speed", #18), that
 * was the largest part of the controller's crypto after the handshake. Our host keys are what
 * known_hosts says (hostkeys/verifier.ts); like OpenSSH's `UpdateHostKeys no`, the announcement is
 * taken and left unanswered. Call right after `client.connect()` (which creates the protocol).
 * When ssh2's internals are not as expected, nothing changes (ssh2 then proves the keys as before).
 */
export function ignoreHostKeysAnnouncement(client: Client): void {
  const handlers = (client as unknown as ProtocolHandlers)._protocol?._handlers;
  const original = handlers?.GLOBAL_REQUEST;
  if (!handlers || typeof original !== 'function') return;
  handlers.GLOBAL_REQUEST = (proto, name, wantReply, data) => {
    if (name !== 'hostkeys-00@openssh.com') return original(proto, name, wantReply, data);
    // What ssh2 itself answers (sshd sends it without asking for a reply).
    if (wantReply) proto.requestSuccess();
  };
}
