import ArgumentParser
import LetheSpec
import LetheSweep

struct Validate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check run specs against the schemas and the planner's checks.",
        discussion:
            "Run specs and sweep specs (kind: sweep: the sweep and every member it expands to). Reports every problem as FILE:LINE:COL: <json-pointer>: <message>. Exits 0 when every spec is valid, 1 when any is invalid, 2 when a spec cannot be read."
    )

    @Argument(help: "Spec files.", completion: .file(extensions: ["yaml", "yml"]))
    var specs: [String]

    @OptionGroup var options: SpecOptions

    @Flag(name: .shortAndLong, help: "Print nothing for valid specs.")
    var quiet = false

    func run() throws {
        let planner = Planner()
        var failed = 0
        var unreadable = 0
        for spec in specs {
            if SweepPlanner.isSweep(spec) {
                do throws(SpecError) {
                    let sweep = try SweepPlanner().plan(path: spec)
                    if !quiet {
                        print(
                            "\(spec): valid sweep (sweep hash \(sweep.hash.prefix(16)), \(sweep.members.count) member\(sweep.members.count == 1 ? "" : "s"))"
                        )
                    }
                } catch {
                    if report(error) == Exit.error { unreadable += 1 }
                    failed += 1
                }
                continue
            }
            do throws(SpecError) {
                let plan = try planner.plan(specPath: spec, overrides: try options.parsedOverrides())
                for w in plan.warnings { printError(w.description) }
                if !quiet { print("\(spec): valid (config hash \(plan.configHash.prefix(16)))") }
            } catch {
                if report(error) == Exit.error { unreadable += 1 }
                failed += 1
            }
        }
        if failed > 0 {
            if specs.count > 1 { printError("\(failed) of \(specs.count) specs are invalid") }
            throw unreadable > 0 ? Exit.error : Exit.no
        }
    }
}
