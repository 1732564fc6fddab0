// The frames of a peer stream (peer-stream.ts, peer-stream-server.ts). Pure.
//
// After an HTTP/1.1 upgrade (`GET /raft/stream`, `Upgrade: timestore-raft-stream/1`) the
// connection carries length-prefixed frames instead of HTTP messages:
//
//   request  (sender → receiver): u32 length | u8 channel | JSON body       (length counts what follows it)
//   answer   (receiver → sender): u32 length | u16 status | JSON body
//
// Answers come in the order of the requests, as with HTTP/1.1 pipelining. The channel names the
// endpoint the body would have been POSTed to; the status and body are what that endpoint answers.

export const STREAM_PATH = '/raft/stream';
export const STREAM_PROTOCOL = 'timestore-raft-stream/1';

/** Endpoints a stream carries, by channel number. */
export const CHANNELS = { '/raft/append': 1, '/raft/forward': 2 } as const;
export type StreamPath = keyof typeof CHANNELS;
export const PATH_OF_CHANNEL: Record<number, StreamPath> = { 1: '/raft/append', 2: '/raft/forward' };

export function isStreamPath(path: string): path is StreamPath {
  return path === '/raft/append' || path === '/raft/forward';
}

/** One request frame: the body encoded once, straight into the frame. */
export function encodeRequest(channel: number, body: string): Buffer {
  const n = Buffer.byteLength(body);
  const b = Buffer.allocUnsafe(5 + n);
  b.writeUInt32BE(1 + n, 0);
  b[4] = channel;
  b.write(body, 5, 'utf8');
  return b;
}

export function encodeAnswer(status: number, body: string): Buffer {
  const n = Buffer.byteLength(body);
  const b = Buffer.allocUnsafe(6 + n);
  b.writeUInt32BE(2 + n, 0);
  b.writeUInt16BE(status, 4);
  b.write(body, 6, 'utf8');
  return b;
}

/**
 * Collects bytes and cuts them into frames: `push` returns the complete frames' contents (what
 * follows each length), or an error when a frame announces more than `maxFrameBytes`.
 */
export class FrameReader {
  private buf: Buffer = Buffer.alloc(0);

  constructor(
    private readonly maxFrameBytes: number,
    private readonly minFrameBytes: number,
  ) {}

  push(chunk: Buffer): Buffer[] | { error: string } {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    const out: Buffer[] = [];
    let pos = 0;
    while (this.buf.length - pos >= 4) {
      const len = this.buf.readUInt32BE(pos);
      if (len > this.maxFrameBytes)
        return { error: `a frame of ${len} bytes is over the limit of ${this.maxFrameBytes}` };
      if (len < this.minFrameBytes) return { error: `a frame of ${len} bytes is too short` };
      if (this.buf.length - pos - 4 < len) break;
      out.push(this.buf.subarray(pos + 4, pos + 4 + len));
      pos += 4 + len;
    }
    this.buf = pos === this.buf.length ? Buffer.alloc(0) : this.buf.subarray(pos);
    return out;
  }

  /** Bytes held for a frame not complete yet. */
  get buffered(): number {
    return this.buf.length;
  }
}
