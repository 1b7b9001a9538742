import ArgumentParser
import Foundation
import LetheRuns
import LetheSpec
import LetheTensor

@main
struct Lethe: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lethe",
        abstract: "Machine unlearning for image-to-image generative models.",
        discussion:
            "Write a YAML run spec (see configs/ and `lethe schema`), check it with `lethe validate`, see what it will do with `lethe plan`, and run it with `lethe run`.",
        version: LetheVersion.current,
        subcommands: [
            Validate.self, PlanCommand.self, Run.self, Sweep.self, Evaluate.self, Table.self, Runs.self, Diff.self,
            Reproduce.self,
            Schema.self, Bench.self,
        ]
    )

    /// ArgumentParser's own entry point, with usage errors mapped to exit code 2 (it uses 64) and any
    /// error that escapes a command reported and mapped to 2, so every command keeps the convention
    /// of `Exit`.
    static func main() {
        StopSignals.install()
        do {
            try Numerics.useISA(from: ProcessInfo.processInfo.environment)
            try Numerics.useSmallProducts(from: ProcessInfo.processInfo.environment)
        } catch {
            printError("error: \(error)")
            Foundation.exit(Exit.error.rawValue)
        }
        let command: ParsableCommand
        do {
            command = try parseAsRoot()
        } catch {
            if exitCode(for: error) == .success { exit(withError: error) }  // --help, --version
            printError(fullMessage(for: error))
            Foundation.exit(Exit.error.rawValue)
        }
        do {
            var command = command
            try command.run()
        } catch let code as ExitCode {
            Foundation.exit(code.rawValue)
        } catch let stop as StopSignals.Interrupted {
            printError(stop.description)
            stop.die()
        } catch {
            if exitCode(for: error) == .success { exit(withError: error) }
            printError(fullMessage(for: error))
            Foundation.exit(Exit.error.rawValue)
        }
    }
}
