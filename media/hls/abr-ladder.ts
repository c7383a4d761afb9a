/**
 * The adaptive-bitrate ladder: besides the source (copied as published),
 * a stream may be transcoded into lower renditions so that viewers on slow
 * networks still play. Each rung is one x264 `veryfast` encode at a bitrate
 * for its height, about a fifth of a core for 480p here.
 */

/** Video bitrate (kbit/s) per rung height. */
const VIDEO_KBPS: Record<number, number> = {
  1080: 4500,
  720: 2500,
  540: 1600,
  480: 1000,
  360: 600,
  240: 350,
  144: 200,
};
const AUDIO_KBPS = 96;

export const LADDER_HEIGHTS = Object.keys(VIDEO_KBPS).map(Number);

/** The source rendition's name (its playlists are under `live/<id>/source/`). */
export const SOURCE_RENDITION = 'source';

export interface AbrRung {
  /** `480p`: the directory and the name in the master playlist. */
  name: string;
  height: number;
  videoKbps: number;
  audioKbps: number;
}

/** Parses `LIVE_ABR_LADDER` (`"480,360"`), highest first; throws on a height not in the table. */
export function parseLadder(spec: string): AbrRung[] {
  const heights = spec
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map(Number);
  const rungs = [...new Set(heights)].map((height) => {
    const videoKbps = VIDEO_KBPS[height];
    if (videoKbps === undefined)
      throw new Error(`LIVE_ABR_LADDER: ${height} is not one of ${LADDER_HEIGHTS.join(', ')}`);
    return { name: `${height}p`, height, videoKbps, audioKbps: AUDIO_KBPS };
  });
  return rungs.sort((a, b) => b.height - a.height);
}

/** BANDWIDTH of a rung in a master playlist: its peak, with room for the container overhead. */
export function rungBandwidth(rung: AbrRung): number {
  return Math.round((rung.videoKbps + rung.audioKbps) * 1000 * 1.15);
}

/**
 * The source's BANDWIDTH when it was not measured (a recording finished from the Db after its
 * ingest died): a 720p30 stream from OBS's defaults.
 */
export const SOURCE_BANDWIDTH_ESTIMATE = 3_500_000;

/** BANDWIDTH of a rendition known only by its name (`source`, `480p`): its rung's, or the source estimate. */
export function renditionBandwidth(name: string): number {
  const height = /^(\d+)p$/.exec(name)?.[1];
  const rung = height ? parseLadder(height)[0] : undefined;
  return rung ? rungBandwidth(rung) : SOURCE_BANDWIDTH_ESTIMATE;
}
