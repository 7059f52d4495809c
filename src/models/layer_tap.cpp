#include "models/layer_tap.h"

#include <torch/csrc/jit/api/function_impl.h>
#include <torch/csrc/jit/ir/ir.h>
#include <torch/script.h>

#include <map>
#include <optional>
#include <set>

#include "core/error.h"

namespace amalgam {
namespace {

using torch::jit::Block;
using torch::jit::Graph;
using torch::jit::Node;
using torch::jit::Value;

std::string join(const std::vector<std::string>& parts) {
  std::string out;
  for (const auto& p : parts) out += (out.empty() ? "" : ".") + p;
  return out;
}

// The submodule path a value refers to, following prim::GetAttr nodes back to `self`; nothing when
// the value is not a submodule reached that way.
std::optional<std::string> module_path(Value* value, Value* self) {
  std::vector<std::string> names;
  while (value != self) {
    Node* node = value->node();
    if (node->kind() != c10::prim::GetAttr) return std::nullopt;
    names.insert(names.begin(), node->s(c10::attr::name));
    value = node->input(0);
  }
  return join(names);
}

bool is_strict_prefix(const std::string& prefix, const std::string& path) {
  return prefix.empty()
             ? !path.empty()
             : path.size() > prefix.size() && path.compare(0, prefix.size(), prefix) == 0 &&
                   path[prefix.size()] == '.';
}

// Inlines the first top-level call that leads towards a wanted path (a call on one of its
// parents, or a helper method of the module itself). Returns false when none is left. Outputs of
// wanted forward calls that get inlined are kept as extra graph outputs, whose uses the inliner
// rewires, so later inlining never leaves them dangling.
bool inline_one_call(Graph& graph, const std::set<std::string>& wanted,
                     std::map<std::string, std::vector<size_t>>& outputs_of) {
  Value* self = graph.inputs()[0];
  for (Node* node : graph.block()->nodes()) {
    if (node->kind() != c10::prim::CallMethod) continue;
    const auto path = module_path(node->input(0), self);
    if (!path) continue;
    const std::string& method = node->s(c10::attr::name);
    bool leads_to_wanted = false;
    for (const auto& w : wanted) leads_to_wanted |= is_strict_prefix(*path, w) || (*path == w);
    if (!leads_to_wanted) continue;
    const bool is_wanted_call = method == "forward" && wanted.count(*path);
    bool parent_of_wanted = false;
    for (const auto& w : wanted) parent_of_wanted |= is_strict_prefix(*path, w);
    if (is_wanted_call && !parent_of_wanted) continue;  // a leaf tap: taken later, not inlined
    auto class_type = node->input(0)->type()->cast<c10::ClassType>();
    if (!class_type) continue;
    torch::jit::GraphFunction* callee =
        torch::jit::tryToGraphFunction(class_type->getMethod(method));
    if (callee == nullptr) continue;
    // The callee's own graph, not its optimised (already fully inlined) one, keeps its calls.
    const std::vector<Value*> results =
        torch::jit::inlineCallTo(node, callee, callee->graph().get());
    if (is_wanted_call && results.size() == 1)
      outputs_of[*path].push_back(graph.registerOutput(results[0]));
    return true;
  }
  return false;
}

// Counts calls of each wanted forward inside nested blocks (if/loop bodies).
void count_nested_calls(Block* block, Value* self, bool nested, const std::set<std::string>& wanted,
                        std::map<std::string, int>& nested_calls) {
  for (Node* node : block->nodes()) {
    if (nested && node->kind() == c10::prim::CallMethod && node->s(c10::attr::name) == "forward") {
      const auto path = module_path(node->input(0), self);
      if (path && wanted.count(*path)) ++nested_calls[*path];
    }
    for (Block* inner : node->blocks()) count_nested_calls(inner, self, true, wanted, nested_calls);
  }
}

}  // namespace

std::vector<std::string> submodule_paths(const torch::jit::Module& module) {
  std::vector<std::string> paths;
  for (const auto& item : module.named_modules())
    if (!item.name.empty()) paths.push_back(item.name);
  return paths;
}

LayerTaps tap_layers(const torch::jit::Module& module, const std::vector<std::string>& paths) {
  const auto forward = module.find_method("forward");
  AMALGAM_CHECK(forward.has_value(), "TorchScript module has no forward method");
  std::shared_ptr<Graph> graph = forward->graph()->copy();
  AMALGAM_CHECK(graph->outputs().size() == 1, "TorchScript forward must return one value");
  const std::set<std::string> wanted(paths.begin(), paths.end());

  // Output 0 stays the original result; taps are appended as further outputs.
  std::map<std::string, std::vector<size_t>> outputs_of;
  while (inline_one_call(*graph, wanted, outputs_of)) {
  }
  Value* self = graph->inputs()[0];
  for (Node* node : graph->block()->nodes()) {
    if (node->kind() != c10::prim::CallMethod || node->s(c10::attr::name) != "forward") continue;
    const auto path = module_path(node->input(0), self);
    if (path && wanted.count(*path) && node->outputs().size() == 1)
      outputs_of[*path].push_back(graph->registerOutput(node->output()));
  }
  std::map<std::string, int> nested_calls;
  count_nested_calls(graph->block(), self, false, wanted, nested_calls);

  const std::vector<std::string> known = submodule_paths(module);
  const std::set<std::string> known_set(known.begin(), known.end());
  LayerTaps taps;
  std::vector<Value*> tuple_items;
  for (const auto& path : paths) {
    const size_t calls = outputs_of.count(path) ? outputs_of[path].size() : 0;
    if (!known_set.count(path))
      taps.untappable.push_back(path + ": no such submodule");
    else if (nested_calls[path] > 0)
      taps.untappable.push_back(path + ": called inside control flow");
    else if (calls == 0)
      taps.untappable.push_back(path + ": forward never calls it");
    else if (calls > 1)
      taps.untappable.push_back(path + ": called " + std::to_string(calls) + " times");
    else {
      taps.tapped.push_back(path);
      tuple_items.push_back(graph->outputs()[outputs_of[path].front()]);
    }
  }
  tuple_items.push_back(graph->outputs()[0]);
  Node* tuple = graph->createTuple(tuple_items);
  tuple->insertBefore(graph->return_node());
  while (!graph->outputs().empty()) graph->eraseOutput(graph->outputs().size() - 1);
  graph->registerOutput(tuple->output());

  auto unit = module._ivalue()->compilation_unit();
  const c10::QualifiedName name(*module.type()->name(), "amalgam_tapped_forward");
  taps.function = unit->create_function(name, graph, /*shouldMangle=*/true);
  return taps;
}

}  // namespace amalgam
