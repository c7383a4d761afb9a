/**
 * A real RTMP publisher for tests and benchmarks: ffmpeg encoding a test
 * pattern with OBS-like settings (x264 veryfast, AAC 48 kHz, FLV over RTMP).
 */
import { type ChildProcess, spawn } from 'node:child_process';

export interface PublisherOptions {
  /** rtmp://host:port/live/<key> */
  url: string;
  /** Stop after this many seconds of media; omit to run until `stop()`. */
  seconds?: number;
  /** e.g. 320x240 (cheap) or 1280x720 (OBS default). */
  size?: string;
  fps?: number;
  /** Keyframe interval in seconds (OBS default 2). */
  keyframeSeconds?: number;
  /** Publish a pre-encoded file (copied, looped) instead of encoding a test pattern. */
  inputFile?: string;
}

export interface Publisher {
  proc: ChildProcess;
  /** Resolves with ffmpeg's exit code and its last stderr lines. */
  exited: Promise<{ code: number | null; stderr: string }>;
  /** Stops publishing as OBS does (graceful: ffmpeg sends its unpublish). */
  stop(): Promise<{ code: number | null; stderr: string }>;
  /** Drops the connection without an unpublish (a network failure). */
  kill(): Promise<{ code: number | null; stderr: string }>;
}

export function startPublisher(options: PublisherOptions): Publisher {
  const fps = options.fps ?? 30;
  const gop = Math.round(fps * (options.keyframeSeconds ?? 1));
  const input = options.inputFile
    ? ['-re', '-stream_loop', '-1', '-i', options.inputFile, '-c', 'copy']
    : [
        '-re',
        '-f',
        'lavfi',
        '-i',
        `testsrc2=size=${options.size ?? '320x240'}:rate=${fps}`,
        '-f',
        'lavfi',
        '-i',
        'sine=frequency=440:sample_rate=48000',
        '-c:v',
        'libx264',
        '-preset',
        'veryfast',
        '-tune',
        'zerolatency',
        '-pix_fmt',
        'yuv420p',
        '-g',
        String(gop),
        '-keyint_min',
        String(gop),
        '-sc_threshold',
        '0',
        '-b:v',
        '800k',
        '-c:a',
        'aac',
        '-ar',
        '48000',
        '-b:a',
        '96k',
      ];
  const args = [
    '-hide_banner',
    '-nostats',
    '-loglevel',
    'error',
    ...input,
    ...(options.seconds ? ['-t', String(options.seconds)] : []),
    '-f',
    'flv',
    options.url,
  ];
  const proc = spawn('ffmpeg', args, { stdio: ['pipe', 'ignore', 'pipe'] });
  let stderr = '';
  proc.stderr?.on('data', (c: Buffer) => {
    stderr = (stderr + c.toString()).slice(-4000);
  });
  const exited = new Promise<{ code: number | null; stderr: string }>((resolve) => {
    proc.once('close', (code) => resolve({ code, stderr }));
  });
  return {
    proc,
    exited,
    stop() {
      // 'q' on stdin is ffmpeg's clean stop: it flushes and closes the RTMP stream properly.
      proc.stdin?.end('q');
      return exited;
    },
    kill() {
      proc.kill('SIGKILL');
      return exited;
    },
  };
}
