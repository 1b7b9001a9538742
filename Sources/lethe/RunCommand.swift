import ArgumentParser
import LetheSpec

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Plan a spec and execute its stages into runs/<config-hash>/."
    )

    @Argument(help: "Spec file.", completion: .file(extensions: ["yaml", "yml"]))
    var spec: String

    @OptionGroup var options: SpecOptions

    func run() throws {
        let plan: Plan
        do throws(SpecError) {
            plan = try Planner().plan(specPath: spec, overrides: try options.parsedOverrides())
        } catch {
            throw report(error)
        }
        for w in plan.warnings { printError(w.description) }
        print(PlanText.render(plan))
        print("")
        print("lethe \(LetheVersion.current): the executor (models, unlearning, evaluation) is not built yet; stopping after the plan.")
    }
}
