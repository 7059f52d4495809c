#include "routing/routing.h"

#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>

#include "core/error.h"
#include "core/names.h"

namespace amalgam {

namespace {

const NameTable<RoutingRule>& rule_names() {
  static const NameTable<RoutingRule> names = {{RoutingRule::kNone, "none"},
                                               {RoutingRule::kTeachers, "teachers"},
                                               {RoutingRule::kGate, "gate"},
                                               {RoutingRule::kConcatenated, "concatenated"}};
  return names;
}

const NameTable<RoutingScore>& score_names() {
  static const NameTable<RoutingScore> names = {{RoutingScore::kEnergy, "energy"},
                                                {RoutingScore::kMaxLogit, "max-logit"},
                                                {RoutingScore::kMaxProb, "max-prob"}};
  return names;
}

const NameTable<SliceWeights>& weight_names() {
  static const NameTable<SliceWeights> names = {{SliceWeights::kExpertise, "expertise"},
                                                {SliceWeights::kResponsibility, "responsibility"},
                                                {SliceWeights::kUniform, "uniform"}};
  return names;
}

}  // namespace

RoutingRule parse_routing_rule(const std::string& name) {
  return parse_choice("--routing", name, rule_names());
}

SliceWeights parse_slice_weights(const std::string& name) {
  return parse_choice("--slice-weights", name, weight_names());
}

void validate(const RoutingOptions& o) {
  // The task factor must come from somewhere: with none, task_loss would route as gate.
  AMALGAM_CHECK(o.rule != RoutingRule::kNone,
                "--routing none: a routed method needs a rule (gate, teachers or concatenated); "
                "for plain KD's target, the softmax of the teachers' concatenated logits, use "
                "--method kd");
  AMALGAM_CHECK(o.confident_share > 0 && o.confident_share <= 1,
                "--confident-share: must be in (0, 1]");
  AMALGAM_CHECK(o.lambda_task >= 0, "--lambda-task: must be >= 0");
  AMALGAM_CHECK(o.gate_forget >= 0 && o.gate_forget < 1, "--gate-forget: must be in [0, 1)");
  AMALGAM_CHECK(o.energy_temperature > 0, "--energy-temperature: must be > 0");
  for (double p : o.prior)
    AMALGAM_CHECK(p > 0 && std::isfinite(p), "--task-prior: every share must be > 0");
  const ScoreCalibration& c = o.likelihood;
  bool finite = std::isfinite(c.scale) && c.scale > 0;
  for (double v : c.offsets) finite = finite && std::isfinite(v);
  for (double v : c.temperatures) finite = finite && std::isfinite(v) && v > 0;
  AMALGAM_CHECK(finite, "routing: the score calibration must be finite (and its scale > 0)");
}

void to_json(nlohmann::json& j, const ScoreCalibration& c) {
  j = {{"temperatures", c.temperatures}, {"scale", c.scale}, {"offsets", c.offsets}};
}

void from_json(const nlohmann::json& j, ScoreCalibration& c) {
  const ScoreCalibration d;
  c.temperatures = j.value("temperatures", d.temperatures);
  c.scale = j.value("scale", d.scale);
  c.offsets = j.value("offsets", d.offsets);
}

void to_json(nlohmann::json& j, const RoutingOptions& o) {
  j = {{"rule", choice_name(o.rule, rule_names())},
       {"score", choice_name(o.score, score_names())},
       {"energy_temperature", o.energy_temperature},
       {"prior", o.prior},
       {"estimate_prior", o.estimate_prior},
       {"likelihood", o.likelihood},
       {"confident_share", o.confident_share},
       {"lambda_task", o.lambda_task},
       {"gate_forget", o.gate_forget},
       {"slice_weights", choice_name(o.slice_weights, weight_names())},
       {"calibrate_gate", o.calibrate_gate},
       {"check", o.check},
       {"label_free_check", o.label_free_check}};
}

void from_json(const nlohmann::json& j, RoutingOptions& o) {
  const RoutingOptions d;
  o.rule = parse_routing_rule(j.value("rule", std::string(choice_name(d.rule, rule_names()))));
  o.score = parse_routing_score(j.value("score", std::string(choice_name(d.score, score_names()))));
  o.energy_temperature = j.value("energy_temperature", d.energy_temperature);
  o.prior = j.value("prior", d.prior);
  o.estimate_prior = j.value("estimate_prior", d.estimate_prior);
  o.likelihood = j.value("likelihood", d.likelihood);
  o.confident_share = j.value("confident_share", d.confident_share);
  o.lambda_task = j.value("lambda_task", d.lambda_task);
  o.gate_forget = j.value("gate_forget", d.gate_forget);
  o.slice_weights = parse_slice_weights(
      j.value("slice_weights", std::string(choice_name(d.slice_weights, weight_names()))));
  o.calibrate_gate = j.value("calibrate_gate", d.calibrate_gate);
  o.check = j.value("check", d.check);
  // Runs recorded before the label-free check existed kept their rule: resumed, they keep it.
  o.label_free_check = j.value("label_free_check", false);
}

RoutingScore parse_routing_score(const std::string& name) {
  return parse_choice("--routing-score", name, score_names());
}

std::vector<double> task_shares(const at::Tensor& task, int64_t tasks) {
  const at::Tensor counts = torch::bincount(task.to(at::kCPU).to(torch::kInt64), {}, tasks);
  const double n = static_cast<double>(std::max<int64_t>(task.numel(), 1));
  std::vector<double> shares;
  for (int64_t t = 0; t < tasks; ++t) shares.push_back(counts[t].item<double>() / n);
  return shares;
}

std::vector<double> energy_temperatures(const std::vector<at::Tensor>& logits, double temperature) {
  std::vector<double> t;
  for (const auto& z : logits)
    t.push_back(temperature * std::max(z.to(torch::kFloat64).std().item<double>(), 1e-6));
  return t;
}

at::Tensor routing_scores(const std::vector<at::Tensor>& logits, RoutingScore score,
                          double temperature, const std::vector<double>& fixed_temperatures) {
  AMALGAM_CHECK(!logits.empty(), "routing: no teacher logits");
  AMALGAM_CHECK(fixed_temperatures.empty() || fixed_temperatures.size() == logits.size(),
                "routing: " + std::to_string(fixed_temperatures.size()) +
                    " energy temperatures for " + std::to_string(logits.size()) + " teachers");
  const std::vector<double> temperatures = score != RoutingScore::kEnergy ? std::vector<double>{}
                                           : fixed_temperatures.empty()
                                               ? energy_temperatures(logits, temperature)
                                               : fixed_temperatures;
  std::vector<at::Tensor> columns;
  for (size_t i = 0; i < logits.size(); ++i) {
    const at::Tensor x = logits[i].to(torch::kFloat64);
    switch (score) {
      case RoutingScore::kEnergy: {
        const double t = temperatures[i];
        columns.push_back(t * torch::logsumexp(x / t, 1));
        break;
      }
      case RoutingScore::kMaxLogit:
        columns.push_back(std::get<0>(x.max(1)));
        break;
      case RoutingScore::kMaxProb:
        // In log space, so biases stay additive like the other scores.
        columns.push_back(std::get<0>(torch::log_softmax(x, 1).max(1)));
        break;
    }
  }
  return torch::stack(columns, 1);
}

namespace {

std::vector<double> normalised_prior(const std::vector<at::Tensor>& logits,
                                     const RoutingOptions& options) {
  std::vector<double> prior = options.prior;
  if (prior.empty())
    for (const auto& z : logits) prior.push_back(static_cast<double>(z.size(1)));
  AMALGAM_CHECK(prior.size() == logits.size(), "--task-prior: " + std::to_string(prior.size()) +
                                                   " values for " + std::to_string(logits.size()) +
                                                   " teachers");
  double sum = 0;
  for (double p : prior) {
    AMALGAM_CHECK(p > 0 && std::isfinite(p), "--task-prior: every share must be > 0");
    sum += p;
  }
  for (double& p : prior) p /= sum;
  return prior;
}

// Each image's routing margin (its best calibrated score over the second; 0 with one task) and
// its cell: the routed task's class offset plus the class that task's teacher predicts.
std::pair<at::Tensor, at::Tensor> margins_and_cells(const at::Tensor& calibrated,
                                                    const at::Tensor& task,
                                                    const std::vector<at::Tensor>& logits) {
  const int64_t n = calibrated.size(0);
  at::Tensor margin;
  if (calibrated.size(1) == 1) {
    margin = torch::zeros({n}, torch::kFloat64);
  } else {
    const auto top = calibrated.topk(2, 1);
    margin = std::get<0>(top).select(1, 0) - std::get<0>(top).select(1, 1);
  }
  at::Tensor cell = torch::zeros({n}, torch::kInt64);
  int64_t offset = 0;
  for (size_t i = 0; i < logits.size(); ++i) {
    const at::Tensor mine = task.eq(static_cast<int64_t>(i));
    cell = torch::where(mine, logits[i].argmax(1).cpu() + offset, cell);
    offset += logits[i].size(1);
  }
  return {margin, cell};
}

// The confident share of each predicted (task, class) cell, by routing margin.
at::Tensor confident_cells(const at::Tensor& calibrated, const at::Tensor& task,
                           const std::vector<at::Tensor>& logits, double share) {
  const int64_t n = calibrated.size(0);
  const auto [margin, cell] = margins_and_cells(calibrated, task, logits);
  int64_t offset = 0;
  for (const auto& l : logits) offset += l.size(1);
  at::Tensor confident = torch::zeros({n}, torch::kBool);
  for (int64_t c = 0; c < offset; ++c) {
    const at::Tensor rows = cell.eq(c).nonzero().flatten();
    const int64_t keep = static_cast<int64_t>(std::ceil(share * static_cast<double>(rows.size(0))));
    if (keep == 0) continue;
    const at::Tensor order = margin.index_select(0, rows).argsort(0, /*descending=*/true);
    confident.index_fill_(0, rows.index_select(0, order.slice(0, 0, keep)), true);
  }
  return confident;
}

}  // namespace

// Each round moves a task's bias by the log ratio of its target share to its current share.
at::Tensor calibrate_to_prior(const at::Tensor& scores, const std::vector<double>& prior) {
  AMALGAM_CHECK(static_cast<int64_t>(prior.size()) == scores.size(1),
                "calibrate_to_prior: one prior share per task expected");
  at::Tensor target = torch::tensor(prior, torch::kFloat64);
  target = (target / target.sum()).log();
  const at::Tensor x = scores.to(torch::kFloat64);
  at::Tensor bias = torch::zeros({x.size(1)}, torch::kFloat64);
  for (int round = 0; round < 200; ++round) {
    const at::Tensor share = torch::softmax(x + bias, 1).mean(0);
    const at::Tensor step = target - share.clamp_min(1e-12).log();
    bias = bias + step;
    bias = bias - bias.mean();
    if (step.abs().max().item<double>() < 1e-6) break;
  }
  return bias;
}

void fit_score_calibration(const at::Tensor& scores, const at::Tensor& truth,
                           ScoreCalibration& calibration) {
  torch::NoGradGuard outer;  // the fit builds its own graph below
  const at::Tensor x = scores.to(torch::kFloat64);
  // Fitted on standardised scores, from slope 1, so the step size suits any score's units.
  const double spread = std::max(x.std().item<double>(), 1e-6);
  const at::Tensor z = (x - x.mean()) / spread;
  at::Tensor log_slope = torch::zeros({1}, torch::kFloat64);
  at::Tensor offsets = torch::zeros({x.size(1)}, torch::kFloat64);
  {
    torch::AutoGradMode grad(true);
    log_slope.set_requires_grad(true);
    offsets.set_requires_grad(true);
    torch::optim::Adam adam({log_slope, offsets}, torch::optim::AdamOptions(0.05));
    for (int step = 0; step < 400; ++step) {
      adam.zero_grad();
      torch::nn::functional::cross_entropy(z * log_slope.exp() + offsets, truth).backward();
      adam.step();
    }
  }
  // scale x score + offset = slope x (score - mean) / spread + fitted offset.
  const double slope = log_slope.exp().item<double>() / spread;
  calibration.scale = slope;
  calibration.offsets.clear();
  for (int64_t t = 0; t < x.size(1); ++t)
    calibration.offsets.push_back(offsets[t].item<double>() - slope * x.mean().item<double>());
}

std::vector<double> estimate_task_prior(const at::Tensor& scores,
                                        const ScoreCalibration& calibration) {
  AMALGAM_CHECK(static_cast<int64_t>(calibration.offsets.size()) == scores.size(1),
                "routing: " + std::to_string(calibration.offsets.size()) + " score offsets for " +
                    std::to_string(scores.size(1)) + " teachers");
  const at::Tensor x = calibration.scale * scores.to(torch::kFloat64) +
                       torch::tensor(calibration.offsets, torch::kFloat64);
  const int64_t tasks = x.size(1);
  at::Tensor share = torch::full({tasks}, 1.0 / static_cast<double>(tasks), torch::kFloat64);
  for (int round = 0; round < 1000; ++round) {
    const at::Tensor next = torch::softmax(x + share.log(), 1).mean(0);
    const double step = (next - share).abs().max().item<double>();
    share = next;
    if (step < 1e-8) break;
  }
  // Mixed with uniform shares so that every task keeps at least the floor.
  const double floor = std::min(kMinEstimatedShare, 0.5 / static_cast<double>(tasks));
  share = share * (1.0 - floor * static_cast<double>(tasks)) + floor;
  return std::vector<double>(share.data_ptr<double>(), share.data_ptr<double>() + tasks);
}

double score_agreement(const at::Tensor& scores) {
  const int64_t teachers = scores.size(1);
  if (teachers < 2 || scores.size(0) < 2) return 0;
  const at::Tensor x = scores.to(torch::kFloat64);
  const at::Tensor centred = x - x.mean(0, /*keepdim=*/true);
  const at::Tensor z = centred / centred.norm(2, 0, /*keepdim=*/true).clamp_min(1e-12);
  const at::Tensor correlation = z.t().mm(z);  // [T,T], ones on the diagonal
  const double off_diagonal = correlation.sum().item<double>() - correlation.trace().item<double>();
  return off_diagonal / static_cast<double>(teachers * (teachers - 1));
}

bool label_free_check_applies(const RoutingOptions& options) {
  return options.check && options.label_free_check && options.rule != RoutingRule::kConcatenated;
}

bool falls_back_without_labels(const RoutingOptions& options, double agreement) {
  return label_free_check_applies(options) && agreement > kMaxScoreAgreement;
}

TaskRouting route_by_teachers(const std::vector<at::Tensor>& logits,
                              const RoutingOptions& options) {
  validate(options);
  TaskRouting routing;
  const at::Tensor scores = routing_scores(logits, options.score, options.energy_temperature,
                                           options.likelihood.temperatures);
  routing.prior = options.prior.empty() && options.likelihood.fitted()
                      ? estimate_task_prior(scores, options.likelihood)
                      : normalised_prior(logits, options);
  routing.agreement = score_agreement(scores);
  const at::Tensor bias = calibrate_to_prior(scores, routing.prior);
  const at::Tensor calibrated = scores + bias;
  routing.bias =
      std::vector<double>(bias.data_ptr<double>(), bias.data_ptr<double>() + bias.numel());
  routing.responsibility = torch::softmax(calibrated, 1).to(torch::kFloat32);
  routing.task = calibrated.argmax(1);
  routing.confident = confident_cells(calibrated, routing.task, logits, options.confident_share);
  return routing;
}

FittedRouting fit_routing(const std::vector<at::Tensor>& logits, const TaskRouting& routing,
                          const RoutingOptions& options) {
  FittedRouting fitted;
  if (options.score == RoutingScore::kEnergy)
    fitted.temperatures = options.likelihood.temperatures.empty()
                              ? energy_temperatures(logits, options.energy_temperature)
                              : options.likelihood.temperatures;
  fitted.bias = routing.bias;
  const at::Tensor scores =
      routing_scores(logits, options.score, options.energy_temperature, fitted.temperatures);
  const at::Tensor calibrated = scores + torch::tensor(fitted.bias, torch::kFloat64);
  const auto [margin, cell] = margins_and_cells(calibrated, routing.task, logits);
  const auto m = margin.accessor<double, 1>();
  const auto c = cell.accessor<int64_t, 1>();
  const auto t = routing.task.accessor<int64_t, 1>();
  const auto confident = routing.confident.accessor<bool, 1>();
  std::vector<int64_t> cell_task, cell_count;
  for (size_t i = 0; i < logits.size(); ++i)
    cell_task.insert(cell_task.end(), static_cast<size_t>(logits[i].size(1)),
                     static_cast<int64_t>(i));
  cell_count.assign(cell_task.size(), 0);
  fitted.cell_margin.assign(cell_task.size(), std::numeric_limits<double>::infinity());
  // Per task, the margin above which its confident share of the sample lies.
  std::vector<std::vector<double>> task_margins(logits.size());
  for (int64_t i = 0; i < margin.size(0); ++i) {
    ++cell_count[static_cast<size_t>(c[i])];
    task_margins[static_cast<size_t>(t[i])].push_back(m[i]);
    if (confident[i]) {
      double& least = fitted.cell_margin[static_cast<size_t>(c[i])];
      least = std::min(least, m[i]);
    }
  }
  std::vector<double> task_margin(logits.size(), std::numeric_limits<double>::infinity());
  for (size_t i = 0; i < logits.size(); ++i) {
    std::vector<double>& ms = task_margins[i];
    const auto keep =
        static_cast<size_t>(std::ceil(options.confident_share * static_cast<double>(ms.size())));
    if (keep == 0) continue;
    std::nth_element(ms.begin(), ms.begin() + static_cast<std::ptrdiff_t>(keep - 1), ms.end(),
                     std::greater<>());
    task_margin[i] = ms[keep - 1];
  }
  // A cell the sample holds few images of (a 1,000-class teacher's classes in 512 images) takes
  // its task's margin: its own would leave it never, or half the time, confident.
  for (size_t k = 0; k < cell_task.size(); ++k)
    if (cell_count[k] < kMinCellSample)
      fitted.cell_margin[k] = task_margin[static_cast<size_t>(cell_task[k])];
  return fitted;
}

TaskRouting apply_routing(const std::vector<at::Tensor>& logits, const FittedRouting& fitted,
                          const RoutingOptions& options) {
  TaskRouting routing;
  const at::Tensor calibrated =
      routing_scores(logits, options.score, options.energy_temperature, fitted.temperatures).cpu() +
      torch::tensor(fitted.bias, torch::kFloat64);
  routing.bias = fitted.bias;
  routing.responsibility = torch::softmax(calibrated, 1).to(torch::kFloat32);
  routing.task = calibrated.argmax(1);
  const auto [margin, cell] = margins_and_cells(calibrated, routing.task, logits);
  routing.confident =
      margin.ge(torch::tensor(fitted.cell_margin, torch::kFloat64).index_select(0, cell));
  return routing;
}

at::Tensor routed_union_prediction(const std::vector<at::Tensor>& logits,
                                   const at::Tensor& task_probs) {
  std::vector<at::Tensor> joint;
  for (size_t i = 0; i < logits.size(); ++i)
    joint.push_back(
        torch::log_softmax(logits[i].to(torch::kFloat32), 1) +
        task_probs.select(1, static_cast<int64_t>(i)).clamp_min(1e-12).log().unsqueeze(1));
  return torch::cat(joint, 1).argmax(1);
}

at::Tensor slice_log_probabilities(const at::Tensor& head_logits,
                                   const std::vector<int64_t>& sizes) {
  const at::Tensor log_probs = torch::log_softmax(head_logits, 1);
  std::vector<at::Tensor> columns;
  int64_t offset = 0;
  for (int64_t k : sizes) {
    columns.push_back(torch::logsumexp(log_probs.slice(1, offset, offset + k), 1));
    offset += k;
  }
  return torch::stack(columns, 1);
}

at::Tensor slice_probabilities(const at::Tensor& head_logits, const std::vector<int64_t>& sizes) {
  return slice_log_probabilities(head_logits, sizes).exp();
}

}  // namespace amalgam
