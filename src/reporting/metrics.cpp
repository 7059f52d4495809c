#include "reporting/metrics.h"

#include <filesystem>
#include <fstream>

#include "core/error.h"

namespace amalgam {

namespace {

// A process killed in the middle of a record leaves an unterminated last line; the resumed run
// appends after it, so it is cut away first, keeping every whole record.
void drop_unterminated_tail(const std::string& path) {
  std::error_code error;
  const auto size = std::filesystem::file_size(path, error);
  if (error || size == 0) return;
  std::ifstream in(path, std::ios::binary);
  std::string text(size, '\0');
  in.read(text.data(), static_cast<std::streamsize>(size));
  if (!in || text.back() == '\n') return;
  const size_t keep =
      text.find_last_of('\n') == std::string::npos ? 0 : text.find_last_of('\n') + 1;
  std::filesystem::resize_file(path, keep, error);
  AMALGAM_CHECK(!error, path + ": cannot cut its unfinished last record: " + error.message());
}

}  // namespace

MetricsLog::MetricsLog(const std::string& path) : path_(path) {
  drop_unterminated_tail(path);
  out_.open(path, std::ios::app);
  AMALGAM_CHECK(out_.good(), path + ": cannot open for appending");
}

void MetricsLog::write(const nlohmann::json& record) {
  out_ << record.dump() << '\n';
  out_.flush();
  AMALGAM_CHECK(out_.good(), path_ + ": write failed (disk full?)");
}

}  // namespace amalgam
