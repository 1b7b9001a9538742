import ArgumentParser
import LetheSpec

struct PlanCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plan",
        abstract: "Show the resolved spec, the stages a run will execute and its config hash."
    )

    @Argument(help: "Spec file.", completion: .file(extensions: ["yaml", "yml"]))
    var spec: String

    @OptionGroup var options: SpecOptions

    @Flag(help: "Print the plan as JSON (canonical member order).")
    var json = false

    func run() throws {
        let plan = try options.plan(spec)
        if json {
            print(JSONPrinter.pretty(plan.json))
        } else {
            print(PlanText.render(plan))
        }
    }
}

enum PlanText {
    /// Two lines for the top of a run's output.
    static func summary(_ plan: Plan) -> String {
        "\(plan.kind) \(plan.specPath)\nconfig hash \(plan.configHash)  stages: "
            + plan.stages.map { "\($0.name) (\($0.status == .done ? "done" : "to run"))" }.joined(separator: ", ")
    }

    static func render(_ plan: Plan) -> String {
        var lines: [String] = []
        lines.append("spec:        \(plan.specPath)")
        lines.append("kind:        \(plan.kind)")
        lines.append("config hash: \(plan.configHash)")
        lines.append("run dir:     \(plan.runDirectory)")
        if let memory = plan.memory { lines.append("memory:      \(memory), estimated peak") }
        lines.append("")
        lines.append("stages:")
        for (n, s) in plan.stages.enumerated() {
            let origin = s.spec.map { "  (\($0))" } ?? ""
            lines.append(
                "  \(n + 1). \(s.name.padding(12)) \(s.configHash.prefix(16))  \(s.status == .done ? "done, reused" : "to run")\(origin)"
            )
        }
        lines.append("")
        lines.append("inputs:")
        for i in plan.inputs {
            lines.append("  \(i.role.padding(24)) \(i.sha256.prefix(16))  \(i.path)")
        }
        lines.append("  \("tool".padding(24)) lethe \(LetheVersion.current)")
        lines.append("")
        lines.append("resolved spec:")
        lines.append(JSONPrinter.yamlish(plan.resolved, indent: 1))
        return lines.joined(separator: "\n")
    }
}

extension String {
    func padding(_ width: Int) -> String { count >= width ? self : self + String(repeating: " ", count: width - count) }
    func leftPadded(_ width: Int) -> String {
        count >= width ? self : String(repeating: " ", count: width - count) + self
    }
}
