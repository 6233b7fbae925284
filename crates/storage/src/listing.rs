//! Folding a sorted run of keys into the entries of one "directory".

/// The entry that `key` contributes to a listing of `prefix`: the rest of the
/// key, cut after its first `/` when it lies deeper. `None` if `key` is not
/// under `prefix`.
pub(crate) fn entry<'k>(prefix: &str, key: &'k str) -> Option<&'k str> {
    let rest = key.strip_prefix(prefix)?;
    match rest.find('/') {
        Some(slash) => Some(&rest[..=slash]),
        None => Some(rest),
    }
}

/// The smallest key greater than every key inside folder `folder` (which ends
/// in `/`): lets a scan jump past a whole folder after listing it once.
pub(crate) fn after_folder(prefix: &str, folder: &str) -> String {
    let mut next = String::with_capacity(prefix.len() + folder.len());
    next.push_str(prefix);
    next.push_str(&folder[..folder.len() - 1]);
    // '0' is the character right after '/'.
    next.push('0');
    next
}

/// Collects a listing from keys in ascending order. `seek` is called with the
/// key to jump to after each folder, so backends can skip its contents.
struct Lister<'a> {
    prefix: &'a str,
    after: Option<&'a str>,
    limit: usize,
    entries: Vec<String>,
}

enum Next {
    Continue,
    SeekTo(String),
    Stop,
}

impl<'a> Lister<'a> {
    fn new(prefix: &'a str, after: Option<&'a str>, limit: Option<usize>) -> Self {
        Self {
            prefix,
            after,
            limit: limit.unwrap_or(usize::MAX),
            entries: Vec::new(),
        }
    }

    /// The first key a scan must look at.
    fn start(&self) -> String {
        match self.after {
            Some(after) if after.ends_with('/') => after_folder(self.prefix, after),
            Some(after) => format!("{}{}\0", self.prefix, after),
            None => self.prefix.to_owned(),
        }
    }

    /// Feeds the next key of the scan.
    fn push(&mut self, key: &str) -> Next {
        if self.entries.len() >= self.limit {
            return Next::Stop;
        }
        let Some(entry) = entry(self.prefix, key) else {
            return Next::Stop;
        };
        if self.after.is_some_and(|after| entry <= after) {
            return Next::Continue;
        }
        if self.entries.last().is_some_and(|last| last == entry) {
            return Next::Continue;
        }
        self.entries.push(entry.to_owned());
        if entry.ends_with('/') {
            Next::SeekTo(after_folder(self.prefix, entry))
        } else {
            Next::Continue
        }
    }
}

/// Lists `prefix` over any ordered key source: `keys_from(start)` yields the
/// keys from `start` on, in order; it is called again after each folder to
/// jump past the folder's contents.
pub(crate) fn list<E, I>(
    prefix: &str,
    after: Option<&str>,
    limit: Option<usize>,
    mut keys_from: impl FnMut(&str) -> Result<I, E>,
) -> Result<Vec<String>, E>
where
    I: Iterator<Item = Result<String, E>>,
{
    let mut lister = Lister::new(prefix, after, limit);
    let mut from = lister.start();
    'scan: loop {
        for key in keys_from(&from)? {
            match lister.push(&key?) {
                Next::Continue => {}
                Next::SeekTo(next) => {
                    from = next;
                    continue 'scan;
                }
                Next::Stop => break 'scan,
            }
        }
        return Ok(lister.entries);
    }
    Ok(lister.entries)
}
