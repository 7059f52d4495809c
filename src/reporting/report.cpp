#include "reporting/report.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <optional>
#include <sstream>

#include "core/atomic_file.h"
#include "core/error.h"
#include "reporting/run_files.h"

namespace amalgam {
namespace {

const char* const kColours[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};

std::string colour(size_t i) {
  return kColours[i % (sizeof kColours / sizeof kColours[0])];
}

std::string escape(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '<')
      out += "&lt;";
    else if (c == '>')
      out += "&gt;";
    else if (c == '&')
      out += "&amp;";
    else if (c == '"')
      out += "&quot;";
    else
      out += c;
  }
  return out;
}

std::string number(double v, int digits = 4) {
  std::ostringstream s;
  s.precision(digits);
  s << v;
  return s.str();
}

struct Series {
  std::string name;
  std::vector<std::pair<double, double>> points;
  bool dashed = false;  // reference lines (teachers)
  int colour = -1;      // palette index; -1: the series' position
};

struct Range {
  double lo = 1e300, hi = -1e300;
  void add(double v) {
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  double span() const { return hi > lo ? hi - lo : 1.0; }
};

// A line chart with axes, ticks at the ends and a legend; `log_y` plots log10 of positive values.
std::string line_chart(const std::string& title, const std::string& x_label,
                       const std::vector<Series>& series, bool log_y = false) {
  const double w = 460, h = 260, left = 56, right = 12, top = 28, bottom = 40;
  Range xr, yr;
  const auto y_of = [&](double v) { return log_y ? std::log10(std::max(v, 1e-12)) : v; };
  for (const auto& s : series)
    for (const auto& [x, y] : s.points) {
      xr.add(x);
      yr.add(y_of(y));
    }
  std::ostringstream svg;
  svg << "<svg class=\"chart\" width=\"" << w << "\" height=\"" << h + 20 * series.size()
      << "\" xmlns=\"http://www.w3.org/2000/svg\"><text x=\"" << left << "\" y=\"18\" "
      << "font-weight=\"bold\">" << escape(title) << "</text>";
  svg << "<rect x=\"" << left << "\" y=\"" << top << "\" width=\"" << w - left - right
      << "\" height=\"" << h - top - bottom << "\" fill=\"none\" stroke=\"#999\"/>";
  if (xr.lo > xr.hi) {
    svg << "<text x=\"" << left + 10 << "\" y=\"" << h / 2 << "\">no data</text></svg>";
    return svg.str();
  }
  const auto px = [&](double x) { return left + (x - xr.lo) / xr.span() * (w - left - right); };
  const auto py = [&](double y) {
    return top + (1 - (y_of(y) - yr.lo) / yr.span()) * (h - top - bottom);
  };
  const auto y_tick = [&](double v) { return log_y ? number(std::pow(10, v), 3) : number(v, 4); };
  svg << "<text x=\"4\" y=\"" << top + 10 << "\" font-size=\"11\">" << y_tick(yr.hi) << "</text>"
      << "<text x=\"4\" y=\"" << h - bottom << "\" font-size=\"11\">" << y_tick(yr.lo) << "</text>"
      << "<text x=\"" << left << "\" y=\"" << h - bottom + 14 << "\" font-size=\"11\">"
      << number(xr.lo) << "</text><text x=\"" << w - right - 40 << "\" y=\"" << h - bottom + 14
      << "\" font-size=\"11\">" << number(xr.hi) << "</text><text x=\"" << (w / 2) << "\" y=\""
      << h - bottom + 28 << "\" font-size=\"12\">" << escape(x_label) << "</text>";
  for (size_t i = 0; i < series.size(); ++i) {
    const Series& s = series[i];
    const std::string c = colour(s.colour >= 0 ? static_cast<size_t>(s.colour) : i);
    svg << "<polyline fill=\"none\" stroke=\"" << c << "\" stroke-width=\"1.6\""
        << (s.dashed ? " stroke-dasharray=\"5,4\"" : "") << " points=\"";
    for (const auto& [x, y] : s.points) svg << number(px(x), 6) << "," << number(py(y), 6) << " ";
    svg << "\"/>";
    if (s.points.size() == 1)
      svg << "<circle cx=\"" << px(s.points[0].first) << "\" cy=\"" << py(s.points[0].second)
          << "\" r=\"3\" fill=\"" << c << "\"/>";
    svg << "<line x1=\"" << left << "\" x2=\"" << left + 18 << "\" y1=\"" << h + 20 * i
        << "\" y2=\"" << h + 20 * i << "\" stroke=\"" << c << "\" stroke-width=\"2\""
        << (s.dashed ? " stroke-dasharray=\"5,4\"" : "") << "/><text x=\"" << left + 24 << "\" y=\""
        << h + 20 * i + 4 << "\" font-size=\"12\">" << escape(s.name) << "</text>";
  }
  svg << "</svg>";
  return svg.str();
}

// A scatter plot of 2-D points coloured by class; `groups` give each point a marker shape. The
// axes are the first two principal components; `legend` names each colour's classes.
std::string scatter(const std::string& title, const nlohmann::json& points,
                    const std::vector<std::string>& legend) {
  const double size = 300, pad = 12;
  const double legend_height = 14.0 * static_cast<double>(legend.size());
  Range xr, yr;
  for (const auto& p : points) {
    xr.add(p.at("x").get<double>());
    yr.add(p.at("y").get<double>());
  }
  std::ostringstream svg;
  svg << "<svg class=\"chart scatter\" width=\"" << size << "\" height=\""
      << size + 38 + legend_height
      << "\" xmlns=\"http://www.w3.org/2000/svg\"><text x=\"4\" y=\"14\" font-size=\"13\" "
      << "font-weight=\"bold\">" << escape(title) << "</text><rect x=\"1\" y=\"20\" width=\""
      << size - 2 << "\" height=\"" << size - 2 << "\" fill=\"none\" stroke=\"#999\"/>";
  for (const auto& p : points) {
    const double x = pad + (p.at("x").get<double>() - xr.lo) / xr.span() * (size - 2 * pad);
    const double y =
        20 + pad + (1 - (p.at("y").get<double>() - yr.lo) / yr.span()) * (size - 2 * pad);
    const std::string c = colour(static_cast<size_t>(p.value("class", 0)));
    if (p.value("group", 0) == 0)
      svg << "<circle cx=\"" << number(x, 5) << "\" cy=\"" << number(y, 5) << "\" r=\"2.5\" fill=\""
          << c << "\" fill-opacity=\"0.75\"/>";
    else
      svg << "<rect x=\"" << number(x - 2.5, 5) << "\" y=\"" << number(y - 2.5, 5)
          << "\" width=\"5\" height=\"5\" fill=\"none\" stroke=\"" << c << "\"/>";
  }
  svg << "<text x=\"" << size / 2 << "\" y=\"" << size + 32
      << "\" font-size=\"11\" text-anchor=\"middle\">principal component 1</text>"
      << "<text x=\"10\" y=\"" << 20 + size / 2 << "\" font-size=\"11\" text-anchor=\"middle\" "
      << "transform=\"rotate(-90 10 " << 20 + size / 2 << ")\">principal component 2</text>";
  for (size_t k = 0; k < legend.size(); ++k) {
    const double y = size + 40 + 14.0 * static_cast<double>(k);
    svg << "<circle cx=\"8\" cy=\"" << y + 4 << "\" r=\"4\" fill=\"" << colour(k)
        << "\"/><text x=\"18\" y=\"" << y + 8 << "\" font-size=\"11\">"
        << escape(legend[k].empty() ? "-" : legend[k]) << "</text>";
  }
  svg << "</svg>";
  return svg.str();
}

std::string table(const std::vector<std::string>& header,
                  const std::vector<std::vector<std::string>>& rows) {
  std::ostringstream html;
  html << "<table><tr>";
  for (const auto& h : header) html << "<th>" << escape(h) << "</th>";
  html << "</tr>";
  for (const auto& row : rows) {
    html << "<tr>";
    for (const auto& cell : row) html << "<td>" << escape(cell) << "</td>";
    html << "</tr>";
  }
  html << "</table>";
  return html.str();
}

std::string percent(double v) {
  return number(100 * v, 4);
}

// Grouped bars: one group per row, one bar per task (mean over seeds, whisker = std).
std::string bar_chart(const std::string& title, const std::vector<std::string>& groups,
                      const std::vector<std::string>& bars,
                      const std::vector<std::vector<std::pair<double, double>>>& values) {
  const double group_w = 26.0 * bars.size() + 14, left = 44, top = 28, plot_h = 200;
  const double w = left + group_w * groups.size() + 10, h = top + plot_h + 130;
  std::ostringstream svg;
  svg << "<svg class=\"chart bars\" width=\"" << w << "\" height=\"" << h + 20
      << "\" xmlns=\"http://www.w3.org/2000/svg\"><text x=\"" << left << "\" y=\"18\" "
      << "font-weight=\"bold\">" << escape(title) << "</text>";
  // Accuracy axis from 0 to 100 %.
  for (int tick = 0; tick <= 100; tick += 25) {
    const double y = top + plot_h * (1 - tick / 100.0);
    svg << "<line x1=\"" << left << "\" x2=\"" << w - 10 << "\" y1=\"" << y << "\" y2=\"" << y
        << "\" stroke=\"#ddd\"/><text x=\"8\" y=\"" << y + 4 << "\" font-size=\"11\">" << tick
        << "</text>";
  }
  for (size_t g = 0; g < groups.size(); ++g) {
    const double x0 = left + g * group_w + 7;
    for (size_t b = 0; b < bars.size() && b < values[g].size(); ++b) {
      const auto [mean, sd] = values[g][b];
      if (std::isnan(mean)) continue;
      const double x = x0 + 26.0 * b, y = top + plot_h * (1 - mean / 100.0);
      svg << "<rect x=\"" << x << "\" y=\"" << number(y, 6) << "\" width=\"22\" height=\""
          << number(top + plot_h - y, 6) << "\" fill=\"" << colour(b) << "\"><title>"
          << escape(groups[g] + ", " + bars[b] + ": " + number(mean, 4) + " ± " + number(sd, 2))
          << "</title></rect>";
      if (sd > 0)
        svg << "<line x1=\"" << x + 11 << "\" x2=\"" << x + 11 << "\" y1=\""
            << number(top + plot_h * (1 - (mean + sd) / 100.0), 6) << "\" y2=\""
            << number(top + plot_h * (1 - (mean - sd) / 100.0), 6) << "\" stroke=\"#000\"/>";
    }
    svg << "<text font-size=\"11\" transform=\"translate(" << x0 + 4 << "," << top + plot_h + 12
        << ") rotate(35)\">" << escape(groups[g]) << "</text>";
  }
  for (size_t b = 0; b < bars.size(); ++b)
    svg << "<rect x=\"" << left + 110 * b << "\" y=\"" << h + 6 << "\" width=\"12\" height=\"12\" "
        << "fill=\"" << colour(b) << "\"/><text x=\"" << left + 110 * b + 16 << "\" y=\"" << h + 16
        << "\" font-size=\"12\">" << escape(bars[b]) << "</text>";
  svg << "</svg>";
  return svg.str();
}

std::pair<double, double> mean_sd(const std::vector<double>& v) {
  double sum = 0, n = 0;
  for (double x : v)
    if (!std::isnan(x)) sum += x, ++n;
  if (n == 0) return {std::nan(""), 0};
  const double mean = sum / n;
  double sq = 0;
  for (double x : v)
    if (!std::isnan(x)) sq += (x - mean) * (x - mean);
  return {mean, n > 1 ? std::sqrt(sq / (n - 1)) : 0};
}

}  // namespace

std::string render_reproduce_report(const nlohmann::json& results) {
  std::ostringstream html;
  html << "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>amalgam reproduce</title>"
       << "<style>body{font-family:sans-serif;margin:24px;max-width:1200px}table{border-collapse:"
       << "collapse;margin:8px 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}"
       << "th{background:#f3f3f3}pre{background:#f7f7f7;padding:8px}</style></head><body>"
       << "<h1>amalgam reproduce</h1><p>"
       << (results.value("settings", nlohmann::json::object()).value("split", "test") == "val"
               ? "Validation"
               : "Test")
       << " accuracy (%), mean over seeds; whiskers and ± are the standard deviation over "
          "seeds.</p>";
  const nlohmann::json benchmarks = results.value("benchmarks", nlohmann::json::array());
  for (const auto& b : benchmarks) {
    std::vector<std::string> tasks;
    for (const auto& t : b.at("tasks")) tasks.push_back(t.value("name", "?"));
    std::vector<std::string> bars = tasks;
    bars.push_back("union");
    std::vector<std::string> groups;
    std::vector<std::vector<std::pair<double, double>>> values;
    std::vector<std::vector<std::string>> rows;
    for (const auto& r : b.at("rows")) {
      groups.push_back(r.value("name", "?"));
      std::vector<std::pair<double, double>> per_bar;
      std::vector<std::string> row = {r.value("name", "?")};
      for (size_t t = 0; t < tasks.size(); ++t) {
        std::vector<double> seeds;
        for (const auto& seed : r.at("task_acc"))
          seeds.push_back(seed.at(t).is_null() ? std::nan("") : 100 * seed.at(t).get<double>());
        per_bar.push_back(mean_sd(seeds));
      }
      std::vector<double> unions;
      for (const auto& u : r.at("union_acc")) unions.push_back(100 * u.get<double>());
      per_bar.push_back(mean_sd(unions));
      for (const auto& [mean, sd] : per_bar)
        row.push_back(std::isnan(mean) ? "-" : number(mean, 4) + " ± " + number(sd, 2));
      row.push_back(std::to_string(r.value("params", 0)));
      values.push_back(per_bar);
      rows.push_back(row);
    }
    std::vector<std::string> header = {"row"};
    for (const auto& t : bars) header.push_back(t);
    header.push_back("parameters");
    html << "<h2>" << escape(b.value("name", "")) << "</h2>"
         << bar_chart(b.value("name", "") + ": accuracy per task", groups, bars, values)
         << table(header, rows);
  }
  html << "<h2>Protocol</h2><pre>" << escape(results.value("settings", nlohmann::json()).dump(2))
       << "</pre></body></html>\n";
  return html.str();
}

std::string render_report(const nlohmann::json& config, const std::vector<MetricsRecord>& metrics,
                          const nlohmann::json& embedding) {
  // The last record of each step and epoch wins (a resumed run logs some steps twice).
  std::map<int64_t, Scores> step_losses;
  std::map<int64_t, EpochMetrics> epochs;
  Scores teachers_val;
  std::optional<SummaryMetrics> summary;
  for (const auto& record : metrics) {
    if (const auto* r = std::get_if<StepMetrics>(&record)) step_losses[r->global_step] = r->loss;
    if (const auto* r = std::get_if<EpochMetrics>(&record)) epochs[r->epoch] = *r;
    if (const auto* r = std::get_if<TeachersMetrics>(&record)) teachers_val = r->val;
    if (const auto* r = std::get_if<SummaryMetrics>(&record)) summary = *r;
  }
  std::map<int64_t, Scores> epoch_losses;
  for (const auto& [epoch, r] : epochs) epoch_losses[epoch] = r.loss;
  // Every loss term the objective logged: total first, then the others by name.
  std::vector<std::string> terms = {"total"};
  for (const auto* records : {&step_losses, &epoch_losses})
    for (const auto& [index, loss] : *records)
      for (const auto& [term, value] : loss)
        if (std::find(terms.begin(), terms.end(), term) == terms.end()) terms.push_back(term);
  const auto value_of = [](const Scores& scores, const std::string& name) {
    const auto it = scores.find(name);
    return it == scores.end() ? 0.0 : it->second;
  };
  // A run shorter than --log-every logs no step: its epochs draw the curve instead.
  const bool losses_by_epoch = step_losses.empty();
  std::vector<Series> losses;
  for (const std::string& term : terms) {
    Series s{term, {}, false};
    for (const auto& [step, loss] : losses_by_epoch ? epoch_losses : step_losses) {
      const double value = value_of(loss, term);
      if (value > 0) s.points.emplace_back(step, value);
    }
    if (!s.points.empty()) losses.push_back(s);
  }
  std::vector<Series> accuracy;
  std::map<std::string, Series> per_task;
  for (const auto& [epoch, r] : epochs)
    for (const auto& [task, acc] : r.val.value_or(Scores{}))
      per_task[task].points.emplace_back(epoch, 100 * acc);
  int task_index = 0;
  for (auto& [task, s] : per_task) {
    s.name = "student, " + task;
    s.colour = task_index;
    accuracy.push_back(s);
    if (teachers_val.count(task) && !s.points.empty())
      accuracy.push_back({"teacher, " + task,
                          {{s.points.front().first, 100 * teachers_val[task]},
                           {s.points.back().first, 100 * teachers_val[task]}},
                          true,
                          task_index});
    ++task_index;
  }
  std::vector<std::vector<std::string>> epoch_rows;
  double trained = 0;  // the epochs' wall times: a resumed run's summary has its last session's
  for (const auto& [epoch, r] : epochs) {
    trained += r.seconds;
    std::vector<std::string> row = {std::to_string(epoch)};
    for (const std::string& term : terms) row.push_back(number(value_of(r.loss, term)));
    row.push_back(number(r.images_per_second, 4));
    std::string text;
    for (const auto& [task, acc] : r.val.value_or(Scores{}))
      text += task + " " + percent(acc) + "%  ";
    row.push_back(text.empty() ? "-" : text);
    epoch_rows.push_back(row);
  }

  std::ostringstream html;
  const nlohmann::json options = config.value("options", nlohmann::json::object());
  const std::string method =
      options.value("objective", nlohmann::json::object()).value("method", "?");
  html << "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>amalgam report</title>"
       << "<style>body{font-family:sans-serif;margin:24px;max-width:1100px}"
       << ".row{display:flex;flex-wrap:wrap;gap:18px}table{border-collapse:collapse;margin:8px 0}"
       << "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#f3f3f3}"
       << "pre{background:#f7f7f7;padding:8px;overflow:auto;max-height:300px}</style></head><body>";
  html << "<h1>amalgam run: " << escape(method) << " student</h1><p>Teachers: ";
  const nlohmann::json teacher_refs = config.value("teachers", nlohmann::json::array());
  for (const auto& t : teacher_refs) html << "<code>" << escape(t.get<std::string>()) << "</code> ";
  html << "</p>";
  if (summary) {
    html << "<h2>Results</h2>";
    std::vector<std::vector<std::string>> rows;
    for (const auto& [task, acc] : summary->student_val.value_or(Scores{}))
      rows.push_back(
          {task, teachers_val.count(task) ? percent(teachers_val[task]) : "-", percent(acc)});
    if (!rows.empty()) html << table({"task (validation accuracy, %)", "teacher", "student"}, rows);
    html << "<p>Student: " << escape(summary->student) << ", " << summary->student_params
         << " parameters; " << number(trained > 0 ? trained : summary->seconds, 4)
         << " s of training (every session of a resumed run).</p>";
  }
  html << "<h2>Training</h2><div class=\"row\">"
       << line_chart("Loss terms (log scale)", losses_by_epoch ? "epoch" : "step", losses, true)
       << line_chart("Validation accuracy (%)", "epoch", accuracy) << "</div>";
  std::vector<std::string> header = {"epoch"};
  header.insert(header.end(), terms.begin(), terms.end());
  header.push_back("img/s");
  header.push_back("validation");
  html << table(header, epoch_rows);
  if (embedding.is_object() && !embedding.empty()) {
    html << "<h2>Feature spaces (PCA, coloured by " << escape(embedding.value("colour_by", "class"))
         << ")</h2><p>Raw feature maps of each network, and the common space where the student's "
            "features (dots) and each teacher's (squares) are pulled together by MMD.</p>"
         << "<div class=\"row\">";
    const nlohmann::json maps = embedding.value("maps", nlohmann::json::object());
    const auto legend = embedding.value("legend", std::vector<std::string>());
    for (const auto& [name, points] : maps.items()) html << scatter(name, points, legend);
    html << "</div>";
  }
  html << "<h2>Configuration</h2><pre>" << escape(config.dump(2)) << "</pre></body></html>\n";
  return html.str();
}

std::string write_report(const std::string& run_dir) {
  const RunFiles files = read_run_files(run_dir);
  const std::string path = run_dir + "/report.html";
  write_text_atomically(path, render_report(files.config, files.metrics, files.embedding));
  return path;
}

}  // namespace amalgam
