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
        let plan = try options.plan(spec)
        print(PlanText.render(plan))
        print("")
        print("lethe \(LetheVersion.current): the executor (models, unlearning, evaluation) is not built yet; stopping after the plan.")
    }
}
