import ArgumentParser
import LetheSpec

@main
struct Lethe: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lethe",
        abstract: "Machine unlearning for image-to-image generative models.",
        discussion: "Write a YAML run spec (see configs/ and `lethe schema`), check it with `lethe validate`, see what it will do with `lethe plan`, and run it with `lethe run`.",
        version: LetheVersion.current,
        subcommands: [Validate.self, PlanCommand.self, Run.self, Evaluate.self, Table.self, Runs.self, Diff.self, Reproduce.self, Schema.self, Bench.self]
    )
}
