#include "reporting/metrics.h"

#include "core/error.h"

namespace amalgam {

MetricsLog::MetricsLog(const std::string& path) : path_(path), out_(path, std::ios::app) {
  AMALGAM_CHECK(out_.good(), path + ": cannot open for appending");
}

void MetricsLog::write(const nlohmann::json& record) {
  out_ << record.dump() << '\n';
  out_.flush();
  AMALGAM_CHECK(out_.good(), path_ + ": write failed (disk full?)");
}

}  // namespace amalgam
