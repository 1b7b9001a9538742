import ArgumentParser
import Foundation
import LetheSpec

/// Flags shared by every command that reads a spec.
struct SpecOptions: ParsableArguments {
    @Option(
        name: .customLong("set"),
        help: ArgumentHelp("Override a spec value, validated like the file (repeatable).", valueName: "key.path=value"))
    var overrides: [String] = []

    func parsedOverrides() throws(SpecError) -> [Override] {
        var out: [Override] = []
        for text in overrides { out.append(try Override(parsing: text)) }
        return out
    }

    /// Plans `spec`, printing its warnings; a spec with errors becomes their report and exit code 1.
    /// `extra` overrides apply after the command line's (`lethe table --seeds` sets `seed=N`).
    func plan(_ spec: String, extra: [String] = []) throws -> Plan {
        let plan: Plan
        do throws(SpecError) {
            var all = try parsedOverrides()
            for text in extra { all.append(try Override(parsing: text)) }
            plan = try Planner().plan(specPath: spec, overrides: all)
        } catch {
            throw report(error)
        }
        for w in plan.warnings { printError(w.description) }
        return plan
    }
}

/// Prints a spec's diagnostics on standard error, one per line, and fails the command.
func report(_ error: SpecError) -> ExitCode {
    for d in error.diagnostics { printError(d.description) }
    let count = error.diagnostics.filter { $0.severity == .error }.count
    printError("\(count) error\(count == 1 ? "" : "s")")
    return error.unreadable ? Exit.error : Exit.no
}

func printError(_ line: String) {
    FileHandle.standardError.write(Data((line + "\n").utf8))
}
