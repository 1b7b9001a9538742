import ArgumentParser
import Foundation
import LetheSweep

struct SweepStatus: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "List a sweep's members and shared stages and the state of each.",
        discussion:
            "States: finished, running (a process builds it now), interrupted (resumes from the step shown), waiting for a shared stage, pending. It reads the runs folder, so it works for either executor; after `--executor slurm` it also says what squeue reports of the submitted jobs."
    )

    @Argument(help: "Sweep spec (kind: sweep).", completion: .file(extensions: ["yaml", "yml"]))
    var sweep: String

    func run() throws {
        let plan = try SweepText.plan(sweep)
        print(SweepText.summary(plan, pending: plan.pendingJobs))
        if !plan.stages.isEmpty {
            print("")
            print(
                TextTable(
                    headers: ["shared stage", "hash", "state"],
                    rows: plan.stages.map {
                        [$0.kind.rawValue, String($0.configHash.prefix(16)), SweepRecord.state(of: $0.runDirectory)]
                    }
                ).render(.text))
        }
        let submitted = SlurmExecutor.submittedJobs(sweepFolder: plan.directory)
        if !submitted.isEmpty {
            print("")
            if let queue = SlurmExecutor.queueStates(submitted) {
                for job in submitted {
                    let states = queue[job.name].map { counts in
                        counts.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key.lowercased())" }.joined(
                            separator: ", ")
                    }
                    print("Slurm job \(job.id) (\(job.name)): \(states ?? "no longer queued (ended)")")
                }
            } else {
                print(
                    "Slurm jobs \(submitted.map(\.id).joined(separator: ", ")) were submitted; squeue cannot be asked from here"
                )
            }
        }
        print("")
        let states = plan.memberStates()
        print(
            TextTable(
                headers: ["#"] + plan.varied + ["hash", "state"],
                rows: zip(plan.members, states).map { m, state in
                    [String(m.index)] + plan.varied.map(m.setting) + [String(m.plan.configHash.prefix(16)), state]
                }
            ).render(.text))
    }
}
