/**
 * HLS playlists: reading the one ffmpeg writes (how we learn that a
 * segment is finished) and writing the ones players load (live window and
 * VOD), which we render ourselves so that a reconnect, an ffmpeg restart or
 * a timed-metadata event never depends on ffmpeg's view of the stream; and
 * the master playlist of a stream with an ABR ladder.
 */

/** A segment as ffmpeg's playlist announces it. */
export interface AnnouncedSegment {
  /** File name in ffmpeg's output directory. */
  file: string;
  durationSeconds: number;
  /** EXT-X-PROGRAM-DATE-TIME of the segment's first frame. */
  programDateTime: Date | null;
  /** The fMP4 init segment (EXT-X-MAP) this segment needs, if any. */
  initFile: string | null;
}

export interface FfmpegPlaylist {
  segments: AnnouncedSegment[];
  ended: boolean;
}

/** Parses the media playlist ffmpeg's hls muxer writes. Unknown tags are ignored. */
export function parseFfmpegPlaylist(text: string): FfmpegPlaylist {
  const segments: AnnouncedSegment[] = [];
  let duration: number | null = null;
  let pdt: Date | null = null;
  let initFile: string | null = null;
  let ended = false;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '') continue;
    if (line.startsWith('#EXTINF:')) {
      duration = Number.parseFloat(line.slice(8));
    } else if (line.startsWith('#EXT-X-PROGRAM-DATE-TIME:')) {
      const d = new Date(line.slice(25));
      pdt = Number.isNaN(d.getTime()) ? null : d;
    } else if (line.startsWith('#EXT-X-MAP:')) {
      initFile = /URI="([^"]+)"/.exec(line)?.[1] ?? null;
    } else if (line === '#EXT-X-ENDLIST') {
      ended = true;
    } else if (!line.startsWith('#') && duration !== null && Number.isFinite(duration)) {
      segments.push({ file: line, durationSeconds: duration, programDateTime: pdt, initFile });
      duration = null;
      pdt = null;
    }
  }
  return { segments, ended };
}

/** A segment as players see it. */
export interface PlaylistSegment {
  /** Position in the stream, from 0, across reconnects. */
  sequence: number;
  /** URI relative to the playlist. */
  uri: string;
  durationSeconds: number;
  programDateTime: Date | null;
  /** The fMP4 init segment URI, relative to the playlist. */
  initUri: string | null;
  /** First segment after a publisher reconnect or a transmuxer restart. */
  discontinuity: boolean;
}

/** Timed metadata (a pin, a flash-sale start) at a moment of the stream. */
export interface DateRange {
  /** Unique within the stream. */
  id: string;
  /** Reverse-DNS class, e.g. `com.livecommerce.pin`. */
  class: string;
  startDate: Date;
  /** Client attributes (`X-` prefixed on the wire). Values are strings or numbers. */
  attributes: Record<string, string | number>;
}

export interface RenderOptions {
  segments: readonly PlaylistSegment[];
  /**
   * Discontinuities of the segments before the first listed one
   * (EXT-X-DISCONTINUITY-SEQUENCE); a listed segment's own discontinuity is
   * written as a tag before it, also when it is first.
   */
  discontinuitySequence: number;
  dateRanges?: readonly DateRange[];
  /** Adds EXT-X-ENDLIST: the stream is over. */
  ended: boolean;
  /** `VOD`: a finished recording that will not change. */
  playlistType?: 'VOD' | 'EVENT';
  /** At least this EXT-X-TARGETDURATION (seconds). */
  minTargetDuration: number;
}

function quoted(value: string): string {
  return `"${value.replaceAll('"', "'").replaceAll('\n', ' ')}"`;
}

function dateRangeLine(range: DateRange): string {
  const parts = [
    `ID=${quoted(range.id)}`,
    `CLASS=${quoted(range.class)}`,
    `START-DATE=${quoted(range.startDate.toISOString())}`,
  ];
  for (const [name, value] of Object.entries(range.attributes)) {
    const key = `X-${name.toUpperCase().replaceAll(/[^A-Z0-9-]/g, '-')}`;
    parts.push(`${key}=${typeof value === 'number' ? String(value) : quoted(value)}`);
  }
  return `#EXT-X-DATERANGE:${parts.join(',')}`;
}

/** Renders a media playlist: every segment carries its program date time, so date ranges map onto the video. */
export function renderMediaPlaylist(options: RenderOptions): string {
  const { segments } = options;
  const longest = segments.reduce((max, s) => Math.max(max, s.durationSeconds), 0);
  const lines = [
    '#EXTM3U',
    '#EXT-X-VERSION:7',
    `#EXT-X-TARGETDURATION:${Math.max(options.minTargetDuration, Math.round(longest))}`,
    `#EXT-X-MEDIA-SEQUENCE:${segments[0]?.sequence ?? 0}`,
    `#EXT-X-DISCONTINUITY-SEQUENCE:${options.discontinuitySequence}`,
    '#EXT-X-INDEPENDENT-SEGMENTS',
  ];
  if (options.playlistType) lines.push(`#EXT-X-PLAYLIST-TYPE:${options.playlistType}`);
  for (const range of options.dateRanges ?? []) lines.push(dateRangeLine(range));
  let init: string | null = null;
  for (const segment of segments) {
    if (segment.discontinuity) lines.push('#EXT-X-DISCONTINUITY');
    if (segment.initUri && segment.initUri !== init) {
      lines.push(`#EXT-X-MAP:URI=${quoted(segment.initUri)}`);
      init = segment.initUri;
    }
    if (segment.programDateTime)
      lines.push(`#EXT-X-PROGRAM-DATE-TIME:${segment.programDateTime.toISOString()}`);
    lines.push(`#EXTINF:${segment.durationSeconds.toFixed(3)},`, segment.uri);
  }
  if (options.ended) lines.push('#EXT-X-ENDLIST');
  return `${lines.join('\n')}\n`;
}

/** One rendition in a master playlist. */
export interface Variant {
  /** Media playlist, relative to the master (`480p/index.m3u8`). */
  uri: string;
  /** Peak bits per second. */
  bandwidth: number;
}

/** A master (multivariant) playlist: highest bandwidth first, as players try the first one first. */
export function renderMasterPlaylist(variants: Variant[]): string {
  const lines = ['#EXTM3U', '#EXT-X-VERSION:6', '#EXT-X-INDEPENDENT-SEGMENTS'];
  for (const v of [...variants].sort((a, b) => b.bandwidth - a.bandwidth)) {
    lines.push(`#EXT-X-STREAM-INF:BANDWIDTH=${v.bandwidth}`, v.uri);
  }
  return `${lines.join('\n')}\n`;
}
