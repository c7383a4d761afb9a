import { describe, expect, it } from 'vitest';
import { isValidKey } from '../platform/object-store/object-key.js';
import { contentMatchesType, displayFileName, keyFileName, uploadContentType } from './uploads-service.js';

describe('upload content types', () => {
  it('accepts the listed types, case-insensitively and with parameters', () => {
    expect(uploadContentType('image/PNG')).toBe('image/png');
    expect(uploadContentType('text/plain; charset=utf-8')).toBe('text/plain');
    expect(uploadContentType('image/svg+xml')).toBeUndefined();
    expect(uploadContentType('text/html')).toBeUndefined();
    expect(uploadContentType(undefined)).toBeUndefined();
  });

  it('checks the content against the declared type', () => {
    const riff = Buffer.concat([Buffer.from('RIFF'), Buffer.alloc(4), Buffer.from('WEBPVP8 ')]);
    expect(contentMatchesType('image/webp', riff)).toBe(true);
    expect(contentMatchesType('image/gif', Buffer.from('GIF89a....'))).toBe(true);
    expect(contentMatchesType('image/jpeg', Buffer.from([0xff, 0xd8, 0xff, 0xe0]))).toBe(true);
    expect(contentMatchesType('image/jpeg', Buffer.from('<html>'))).toBe(false);
    expect(contentMatchesType('application/pdf', Buffer.from('%PDF-1.7'))).toBe(true);
    expect(contentMatchesType('text/plain', Buffer.from('héllo ✓'))).toBe(true);
    expect(contentMatchesType('text/plain', Buffer.from([0xc3, 0x28]))).toBe(false);
    expect(contentMatchesType('text/plain', Buffer.from('a\u0000b'))).toBe(false);
  });
});

describe('file names', () => {
  it('decodes, strips directories and defaults by type', () => {
    expect(displayFileName(encodeURIComponent('Ünïcode 名前.png'), 'image/png')).toBe('Ünïcode 名前.png');
    expect(displayFileName(Buffer.from('raw ü.txt').toString('latin1'), 'text/plain')).toBe('raw ü.txt');
    expect(displayFileName('C:\\Users\\me\\photo.jpg', 'image/jpeg')).toBe('photo.jpg');
    expect(displayFileName('  ', 'application/pdf')).toBe('upload.pdf');
    expect(displayFileName(undefined, 'image/gif')).toBe('upload.gif');
    expect(() => displayFileName('a%ZZ%E0', 'image/png')).toThrow(/percent-encoding/);
    expect(() => displayFileName('a\tb', 'image/png')).toThrow(/control/);
    expect(() => displayFileName('x'.repeat(256), 'image/png')).toThrow(/255/);
  });

  it('makes a valid object-key segment with an extension from any display name', () => {
    for (const [name, expected] of [
      ['Été à la plage.png', 'Ete_a_la_plage.png'],
      ['..', 'file.png'],
      ['.hidden', 'hidden.png'],
      ['名前', 'file.png'],
      ['report', 'report.png'],
      ['a'.repeat(300), `${'a'.repeat(96)}.png`],
    ] as const) {
      const key = keyFileName(name, 'image/png');
      expect(key).toBe(expected);
      expect(isValidKey(`uploads/u/id/${key}`)).toBe(true);
    }
  });
});
