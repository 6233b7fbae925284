//! grpc-go before 1.34, which the Kubernetes 1.20 API server vendors, sends
//! the socket's path as each request's `:authority` (`/var/run/kms.sock`).
//! That is no URI authority, and the HTTP/2 server refuses such a request
//! as malformed (RST_STREAM PROTOCOL_ERROR). The plugin therefore reads the
//! client's frames itself: every header block is decoded, an authority that
//! does not parse becomes `localhost`, and the block is encoded again; all
//! other frames pass through unchanged, and the answers are not touched.

use bytes::BufMut;
use std::io;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

const PREFACE_LEN: usize = 24;
const HEADERS: u8 = 0x1;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;
/// HTTP/2's default largest frame, which the server never raises.
const MAX_FRAME: usize = 16_384;
/// A header block this long is no KMS call.
const MAX_BLOCK: usize = 64 * 1024;

/// Copies the client's frames to the server, mending each `:authority`.
pub(crate) async fn mend(
    mut from: impl AsyncRead + Unpin,
    mut to: impl AsyncWrite + Unpin,
) -> io::Result<()> {
    let mut preface = [0u8; PREFACE_LEN];
    from.read_exact(&mut preface).await?;
    to.write_all(&preface).await?;
    let mut decoder = loona_hpack::Decoder::new();
    let mut encoder = loona_hpack::Encoder::new();
    // A header block waiting for its CONTINUATION frames.
    let mut pending: Option<(u32, u8, Vec<u8>)> = None;
    loop {
        let mut head = [0u8; 9];
        match from.read_exact(&mut head).await {
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return to.shutdown().await,
            other => other?,
        };
        let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
        let (kind, flags) = (head[3], head[4]);
        let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
        if len > MAX_FRAME {
            return Err(refused("a frame larger than the server allows"));
        }
        let mut payload = vec![0u8; len];
        from.read_exact(&mut payload).await?;
        let block = match (kind, pending.take()) {
            (HEADERS, None) => Some((stream, flags & END_STREAM, fragment(flags, &payload)?)),
            (CONTINUATION, Some((s, end_stream, mut block))) if s == stream => {
                block.extend_from_slice(&payload);
                Some((s, end_stream, block))
            }
            (CONTINUATION, _) | (_, Some(_)) => {
                return Err(refused("a header block was interrupted"));
            }
            _ => {
                to.write_all(&head).await?;
                to.write_all(&payload).await?;
                None
            }
        };
        let Some((stream, end_stream, block)) = block else {
            continue;
        };
        if block.len() > MAX_BLOCK {
            return Err(refused("a header block too large"));
        }
        if flags & END_HEADERS == 0 {
            pending = Some((stream, end_stream, block));
            continue;
        }
        let mut headers = decoder
            .decode(&block)
            .map_err(|e| refused(&format!("a header block that does not decode: {e:?}")))?;
        for (name, value) in &mut headers {
            if name.as_slice() == b":authority"
                && http::uri::Authority::try_from(value.as_slice()).is_err()
            {
                *value = b"localhost".to_vec();
            }
        }
        let encoded = encoder.encode(headers.iter().map(|(n, v)| (n.as_slice(), v.as_slice())));
        let chunks: Vec<&[u8]> = encoded.chunks(MAX_FRAME).collect();
        for (i, chunk) in chunks.iter().enumerate() {
            let mut frame = Vec::with_capacity(9 + chunk.len());
            frame.put_uint(chunk.len() as u64, 3);
            let (kind, mut flags) = if i == 0 {
                (HEADERS, end_stream)
            } else {
                (CONTINUATION, 0)
            };
            if i + 1 == chunks.len() {
                flags |= END_HEADERS;
            }
            frame.put_u8(kind);
            frame.put_u8(flags);
            frame.put_u32(stream);
            frame.extend_from_slice(chunk);
            to.write_all(&frame).await?;
        }
        if chunks.is_empty() {
            let mut frame = vec![0, 0, 0, HEADERS, end_stream | END_HEADERS];
            frame.put_u32(stream);
            to.write_all(&frame).await?;
        }
    }
}

/// The header block fragment of a HEADERS frame, without padding or priority.
fn fragment(flags: u8, payload: &[u8]) -> io::Result<Vec<u8>> {
    let mut start = 0;
    let mut end = payload.len();
    if flags & PADDED != 0 {
        let pad = usize::from(
            *payload
                .first()
                .ok_or_else(|| refused("an empty padded frame"))?,
        );
        start = 1;
        end = end
            .checked_sub(pad)
            .ok_or_else(|| refused("more padding than frame"))?;
    }
    if flags & PRIORITY != 0 {
        start += 5;
    }
    payload
        .get(start..end)
        .map(<[u8]>::to_vec)
        .ok_or_else(|| refused("a HEADERS frame too short"))
}

fn refused(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("the client sent {what}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let mut f = Vec::new();
        f.put_uint(payload.len() as u64, 3);
        f.put_u8(kind);
        f.put_u8(flags);
        f.put_u32(stream);
        f.extend_from_slice(payload);
        f
    }

    #[tokio::test]
    async fn a_path_as_authority_becomes_localhost_and_the_rest_passes() {
        let mut client_encoder = loona_hpack::Encoder::new();
        let headers: Vec<(&[u8], &[u8])> = vec![
            (b":method", b"POST"),
            (b":scheme", b"http"),
            (b":path", b"/v1beta1.KeyManagementService/Version"),
            (b":authority", b"/var/run/kms.sock"),
            (b"content-type", b"application/grpc"),
        ];
        let block = client_encoder.encode(headers.iter().copied());
        let (first, rest) = block.split_at(10);
        let mut input = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        input.extend(frame(0x4, 0, 0, &[]));
        input.extend(frame(
            HEADERS,
            PADDED,
            1,
            &[&[2u8][..], first, &[0, 0]].concat(),
        ));
        input.extend(frame(CONTINUATION, END_HEADERS, 1, rest));
        input.extend(frame(0x0, END_STREAM, 1, b"\0\0\0\0\0"));
        let mut output = Vec::new();
        mend(input.as_slice(), &mut output).await.unwrap();

        assert_eq!(&output[..24], b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
        let settings = &output[24..33];
        assert_eq!(settings[3], 0x4);
        let headers_frame = &output[33..];
        let len =
            u32::from_be_bytes([0, headers_frame[0], headers_frame[1], headers_frame[2]]) as usize;
        assert_eq!(headers_frame[3], HEADERS);
        assert_eq!(headers_frame[4], END_HEADERS);
        let decoded = loona_hpack::Decoder::new()
            .decode(&headers_frame[9..9 + len])
            .unwrap();
        assert!(decoded.contains(&(b":authority".to_vec(), b"localhost".to_vec())));
        assert!(decoded.contains(&(
            b":path".to_vec(),
            b"/v1beta1.KeyManagementService/Version".to_vec()
        )));
        assert_eq!(
            &headers_frame[9 + len..],
            frame(0x0, END_STREAM, 1, b"\0\0\0\0\0").as_slice()
        );
    }

    #[tokio::test]
    async fn interrupted_header_blocks_are_refused() {
        let mut input = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        input.extend(frame(HEADERS, 0, 1, b"\x82"));
        input.extend(frame(0x0, 0, 1, b"x"));
        let err = mend(input.as_slice(), Vec::new()).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }
}
