"""A minimal gdb remote-serial-protocol client for tests/e2e/gdb.sh's raw
checks: packets are framed and checksummed here, replies read up to their
checksum, and the acks gdb's protocol puts before them are skipped."""
import socket


def frame(payload):
    """$payload#checksum, as a packet goes on the wire."""
    return b'$' + payload + b'#%02x' % (sum(payload) & 0xff)


class Rsp:
    def __init__(self, port, timeout=30):
        self.sock = socket.create_connection(('127.0.0.1', int(port)), 5)
        self.sock.settimeout(timeout)
        self.buf = b''

    def fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise SystemExit('the connection closed; got %r' % self.buf)
        self.buf += data

    def send(self, raw):
        """Bytes exactly as given: a broken packet, Ctrl-C, a packet nobody answers."""
        self.sock.sendall(raw)

    def reply(self):
        """The next packet's payload, as text."""
        while True:
            a = self.buf.find(b'$')
            h = self.buf.find(b'#', a) if a >= 0 else -1
            if h >= 0 and len(self.buf) >= h + 3:
                payload, self.buf = self.buf[a + 1:h], self.buf[h + 3:]
                return payload.decode('latin-1')
            self.fill()

    def ask(self, payload):
        if isinstance(payload, str):
            payload = payload.encode('latin-1')
        self.send(frame(payload))
        return self.reply()

    def close(self):
        self.sock.close()
