import ArgumentParser
import Foundation
import LetheSpec

/// Flags shared by every command that reads a spec.
struct SpecOptions: ParsableArguments {
    @Option(name: .customLong("set"), help: ArgumentHelp("Override a spec value, validated like the file (repeatable).", valueName: "key.path=value"))
    var overrides: [String] = []

    func parsedOverrides() throws(SpecError) -> [Override] {
        var out: [Override] = []
        for text in overrides { out.append(try Override(parsing: text)) }
        return out
    }
}

/// Prints a spec's diagnostics on standard error, one per line, and fails the command.
func report(_ error: SpecError) -> ExitCode {
    for d in error.diagnostics { printError(d.description) }
    let count = error.diagnostics.filter { $0.severity == .error }.count
    printError("\(count) error\(count == 1 ? "" : "s")")
    return ExitCode(1)
}

func printError(_ line: String) {
    FileHandle.standardError.write(Data((line + "\n").utf8))
}
