// Node checks the server's name after every full handshake by calling getPeerCertificate(true)
// on the socket and passing the result to tls.checkServerIdentity, which reads two fields of the
// leaf: `subject` and `subjectaltname`. The `true` makes Node copy and convert the whole peer
// chain to JS objects first: 0.58 ms of CPU a connection on the 2-core x86 VM (0.04 ms for the
// leaf alone), more on a device's CPU, twice a provisioning (claim, then the new certificate).
// Until the handshake's check is done, this socket answers with the leaf alone: the same names,
// the same check, the same refusal (ERR_TLS_CERT_ALTNAME_INVALID); afterwards the method is
// Node's again. Chain verification against the CA is OpenSSL's and is not touched.
import { TLSSocket } from 'node:tls';

export function checkServerIdentityOnLeaf(socket: TLSSocket): TLSSocket {
  const leaf = () => TLSSocket.prototype.getPeerCertificate.call(socket, false);
  // Node asks with `true` and reads only the leaf's names: the leaf's object, typed as Node's method.
  socket.getPeerCertificate = leaf as TLSSocket['getPeerCertificate'];
  // 'secureConnect' is emitted right after Node's check passed (_tls_wrap onConnectSecure).
  socket.once('secureConnect', () => Reflect.deleteProperty(socket, 'getPeerCertificate'));
  return socket;
}
