//! The `.env` file: `./.env` in the working directory, or the file `ENV_FILE` names.

/// Loads `.env` from the working directory, or the file named by `ENV_FILE`, into the
/// environment (variables already set win). A missing `./.env` is fine; a missing `ENV_FILE` is
/// an error. Never a parent directory's `.env`: one in a directory that others can write to (the
/// temporary directory, say) could point GOTRUE_URL at an attacker. A malformed line is reported
/// by its number only: the line itself may hold a password or a key.
pub fn load_dotenv() -> Result<(), String> {
    let (path, named) = match std::env::var_os("ENV_FILE") {
        Some(path) if !path.is_empty() => (std::path::PathBuf::from(path), true),
        _ => (std::path::PathBuf::from(".env"), false),
    };
    match dotenvy::from_path(&path) {
        Ok(()) => Ok(()),
        Err(err) if err.not_found() && !named => Ok(()),
        Err(dotenvy::Error::LineParse(line, _)) => {
            let number = std::fs::read_to_string(&path)
                .ok()
                .and_then(|text| line_number_of(&text, &line));
            Err(match number {
                Some(n) => format!("line {n} is malformed (its content is not shown)"),
                None => "a line is malformed (its content is not shown)".to_owned(),
            })
        }
        Err(dotenvy::Error::Io(err)) if named => Err(format!("ENV_FILE={}: {err}", path.display())),
        Err(dotenvy::Error::Io(err)) => Err(err.to_string()),
        Err(_) => Err("it is not valid".to_owned()),
    }
}

/// The 1-based number of the line where `line` starts in `text`.
pub(super) fn line_number_of(text: &str, line: &str) -> Option<usize> {
    let at = text.find(line.trim_start())?;
    Some(text[..at].matches('\n').count() + 1)
}
