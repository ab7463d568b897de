/* global TextDecoder */
/**
 * Server-sent events read from a `fetch` body. `EventSource` cannot send an Authorization header, so
 * the page streams the response itself and parses it as the WHATWG rules say: `field: value` lines,
 * a blank line dispatches the event, lines starting with `:` (heart-beats) are comments.
 * @module
 */

/**
 * Yields `{event, id, data}` for each event until the server ends the stream (or the fetch is aborted).
 * @param {ReadableStream<Uint8Array>} body
 * @returns {AsyncGenerator<{event: string, id: string | undefined, data: string}>}
 */
export async function* readServerSentEvents(body) {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  let fields = { data: [] };
  let ended = false;
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) {
        ended = true;
        break;
      }
      buffer += decoder.decode(value, { stream: true });
      let match;
      while ((match = /\r\n|\n|\r/.exec(buffer)) !== null) {
        // A lone \r at the end may be the first half of \r\n: wait for more.
        if (match[0] === '\r' && match.index === buffer.length - 1) break;
        const line = buffer.slice(0, match.index);
        buffer = buffer.slice(match.index + match[0].length);
        if (line === '') {
          if (fields.data.length > 0) yield { event: fields.event ?? 'message', id: fields.id, data: fields.data.join('\n') };
          fields = { data: [] };
          continue;
        }
        if (line.startsWith(':')) continue;
        const colon = line.indexOf(':');
        const name = colon < 0 ? line : line.slice(0, colon);
        const text = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
        if (name === 'data') fields.data.push(text);
        else if (name === 'event') fields.event = text;
        else if (name === 'id') fields.id = text;
      }
    }
  } finally {
    // The consumer stopped early: tell the server this client has left.
    if (!ended) reader.cancel().catch(() => undefined);
    reader.releaseLock();
  }
}
