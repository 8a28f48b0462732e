//! The answer of a service this one calls (an HTTP hook, the trace collector), read within a
//! bound: a caller that never reads more than it expects cannot be made to hold more.

/// The body of `answer` if it is at most `limit` bytes; `Ok(None)` as soon as it is longer (the
/// rest is not read).
pub async fn read_at_most(
    mut answer: reqwest::Response,
    limit: usize,
) -> Result<Option<Vec<u8>>, reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = answer.chunk().await? {
        if body.len() + chunk.len() > limit {
            return Ok(None);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(body))
}
