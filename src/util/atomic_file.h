#pragma once
// Artifacts are written atomically (DESIGN: temp file + rename) so a reader,
// or a resumed run after a crash, never sees a half-written file.
#include <string>
#include <string_view>

#include "util/status.h"

namespace caliprox {

// Writes `bytes` to a uniquely named temporary file next to `path`, fsyncs it
// and renames it over `path`. On failure the temporary file is removed and
// `path` is left as it was. I/O errors are Errc::runtime and name the path.
// A `path` that is a device, FIFO or socket (/dev/null, /dev/stdout, a pipe)
// is opened and written directly: a rename would replace the node itself.
Status write_file_atomic(const std::string& path, std::string_view bytes);

// Creates `dir` and its missing parents; fine when it already is a directory.
Status ensure_directory(const std::string& dir);

}  // namespace caliprox
