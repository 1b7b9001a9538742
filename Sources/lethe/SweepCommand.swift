import ArgumentParser
import Foundation
import LetheFiles
import LetheRuns
import LetheSpec
import LetheSweep

struct Sweep: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run many specs from one sweep spec (kind: sweep), locally or on Slurm.",
        discussion: """
            A sweep spec names a base run spec (or several) and the settings to vary: `grid` (every \
            combination), `zip` (paired lists) and `set` (every member). Each member is an ordinary run, \
            planned and hashed as `lethe run BASE --set ...` would be, so finished members are reused and a \
            second call only runs what is missing. Shared stages (an original model's pretraining, the \
            feature classifier) are built once, before the members that need them. Results: \
            <output>/sweeps/<sweep-hash>/ with members.json, table.md, table.csv and, when unlearn.alpha \
            varies, pareto.svg.
            Example: lethe sweep configs/mae-alpha-sweep.yaml --jobs 2
            """,
        subcommands: [SweepRun.self, SweepStatus.self, SweepCollect.self],
        defaultSubcommand: SweepRun.self
    )
}

enum SweepExecutorKind: String, ExpressibleByArgument, CaseIterable {
    case local, slurm
}

struct SweepRun: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run a sweep's unfinished stages and members, then write its table (the default subcommand).",
        discussion: """
            local (the default): a pool of `lethe run` processes, --jobs at a time, the cores divided among \
            them; each job's output goes to <sweep folder>/logs/. Ctrl-C (or SIGTERM) stops the pool: the \
            running members save their training state, and the same command later resumes them. \
            slurm: writes batch scripts to <sweep folder>/slurm/ and submits them with sbatch: a job per \
            shared stage, a job array of the members after them (--dependency=afterok), and a collect job \
            after the array that writes the table; every job is --requeue and resumes after preemption. \
            --dry-run prints the jobs (local) or the scripts and sbatch commands (slurm) without running \
            anything. Exit codes: 0 every member finished (or, with slurm, was submitted), 1 the sweep spec \
            is invalid, 2 a member failed or something could not be done.
            """
    )

    @Argument(help: "Sweep spec (kind: sweep).", completion: .file(extensions: ["yaml", "yml"]))
    var sweep: String

    @Option(help: "Where the members run: local or slurm.")
    var executor: SweepExecutorKind = .local

    @Option(
        help:
            "Local executor: members at once (default: the cores, fewer when the memory the planner estimates per member would not fit)."
    )
    var jobs: Int?

    @Flag(help: "Print what would run (commands or batch scripts) and stop.")
    var dryRun = false

    @OptionGroup var slurm: SlurmOptions

    func validate() throws {
        if let jobs { try OptionChecks.atLeast(jobs, 1, name: "--jobs") }
        try slurm.validate()
    }

    func run() throws {
        let plan = try SweepText.plan(sweep)
        let pending = plan.pendingJobs
        print(SweepText.summary(plan, pending: pending))
        let binary = SweepText.binary
        switch executor {
        case .local:
            let (jobs, threads) = localShape(plan, pending: pending.count)
            if dryRun {
                print(
                    "would run \(pending.count) job\(pending.count == 1 ? "" : "s"), \(jobs) at a time, \(threads) thread\(threads == 1 ? "" : "s") each:"
                )
                for job in pending {
                    let after = job.needs.isEmpty ? "" : "  (after \(job.needs.joined(separator: ", ")))"
                    print(
                        "  \(job.name): lethe \(job.arguments.map(SlurmExecutor.quote).joined(separator: " ")) --threads \(threads)\(after)"
                    )
                }
                return
            }
            let lock = try SweepText.lock(plan)
            defer { lock.release() }
            let pool = LocalPool(
                binary: binary, jobs: jobs, threads: threads, logFolder: plan.directory + "/logs", log: SweepText.say)
            let outcome: LocalPool.Outcome
            do { outcome = try pool.run(pending) } catch { throw failure("\(error)") }
            var record = plan.record
            for i in record.members.indices {
                let job = SweepPlan.memberJobName(record.members[i].index)
                switch outcome.statuses[job] {
                case .failed(let why)?: record.members[i].state = "failed (\(why); logs/\(job).log)"
                case .skipped(let need)?: record.members[i].state = "not run (\(need) failed)"
                default: break
                }
            }
            let files = try SweepText.collect(record, into: plan.directory)
            let failed = outcome.statuses.filter {
                if case .failed = $0.value { return true }
                if case .skipped = $0.value { return true }
                return false
            }
            print(SweepText.summary(plan, pending: plan.pendingJobs))
            print("results: " + files.joined(separator: ", "))
            if let signal = outcome.stoppedBy {
                let stop = StopSignals.Interrupted(
                    signal: signal,
                    description:
                        "sweep stopped by \(StopSignals.name(signal)); members that were running saved their state, and `lethe sweep \(sweep)` resumes them"
                )
                printError(stop.description)
                stop.die()
            }
            if !failed.isEmpty {
                throw failure(
                    "\(failed.count) job\(failed.count == 1 ? "" : "s") did not finish: \(failed.keys.sorted().joined(separator: ", ")); logs in \(plan.directory)/logs"
                )
            }
        case .slurm:
            let executor: SlurmExecutor
            do {
                executor = try SlurmExecutor(
                    binary: binary, settings: slurm.apply(to: plan.slurm), sweepFolder: plan.directory)
            } catch { throw failure("\(error)") }
            let scripts = executor.scripts(plan, jobs: pending)
            if dryRun {
                for s in scripts {
                    print("== \(executor.folder)/\(s.name)")
                    print(s.text)
                    print("submit: sbatch " + executor.sbatchArguments(s, ids: [:]).joined(separator: " "))
                    print("")
                }
                return
            }
            if pending.isEmpty {
                _ = try SweepText.collect(plan.record, into: plan.directory)
                print("nothing to submit: every member is finished; results in \(plan.directory)")
                return
            }
            let lock = try SweepText.lock(plan)
            defer { lock.release() }
            _ = try SweepText.collect(plan.record, into: plan.directory)
            do { _ = try executor.submit(scripts, log: SweepText.say) } catch { throw failure("\(error)") }
            print("follow it with `lethe sweep status \(sweep)`; the collect job writes \(plan.directory)/table.md")
        }
    }

    /// Members at once and threads each: --jobs (default the cores, capped by the planner's memory
    /// estimate of the largest member), the cores shared among them.
    func localShape(_ plan: SweepPlan, pending: Int) -> (jobs: Int, threads: Int) {
        let cores = ProcessInfo.processInfo.activeProcessorCount
        let largest = plan.members.compactMap { $0.plan.memory?.total }.max() ?? 0
        let fit = largest > 0 ? max(1, Int(0.8 * MemoryEstimate.physicalMemory / largest)) : cores
        let n = max(1, min(jobs ?? min(cores, fit), max(1, pending)))
        return (n, max(1, cores / n))
    }
}

/// Slurm resources from the command line; each overrides the sweep spec's `slurm` section.
struct SlurmOptions: ParsableArguments {
    @Option(help: "Slurm partition.") var partition: String?
    @Option(help: "Wall-clock limit per job (e.g. 4:00:00).") var time: String?
    @Option(help: "Cores per member (also its thread count).") var cpusPerTask: Int?
    @Option(help: "Memory per job (e.g. 8G).") var mem: String?
    @Option(help: "At most this many members at once (--array=0-N%M).") var maxParallel: Int?
    @Option(help: "Slurm account.") var account: String?
    @Option(help: "Slurm QOS.") var qos: String?

    func validate() throws {
        if let cpusPerTask { try OptionChecks.atLeast(cpusPerTask, 1, name: "--cpus-per-task") }
        if let maxParallel { try OptionChecks.atLeast(maxParallel, 1, name: "--max-parallel") }
        if let time, time.range(of: #"^([0-9]+-)?[0-9]+(:[0-9]{2}){0,2}$"#, options: .regularExpression) == nil {
            throw ValidationError("--time takes Slurm's formats (minutes, H:MM:SS, D-HH:MM:SS); found '\(time)'")
        }
        for (name, value) in [("--partition", partition), ("--account", account), ("--qos", qos)] {
            if let value, value.range(of: #"^[A-Za-z0-9][A-Za-z0-9_.,+-]*$"#, options: .regularExpression) == nil {
                throw ValidationError("\(name) takes a Slurm name (letters, digits and _ . , + -); found '\(value)'")
            }
        }
        if let mem, mem.range(of: #"^[0-9]+[KMGT]?$"#, options: .regularExpression) == nil {
            throw ValidationError("--mem takes a size such as 8G or 8000M; found '\(mem)'")
        }
    }

    func apply(to base: SlurmSettings) -> SlurmSettings {
        var s = base
        if let partition { s.partition = partition }
        if let time { s.time = time }
        if let cpusPerTask { s.cpusPerTask = cpusPerTask }
        if let mem { s.mem = mem }
        if let maxParallel { s.maxParallel = maxParallel }
        if let account { s.account = account }
        if let qos { s.qos = qos }
        return s
    }
}

/// What the sweep subcommands share: planning with errors reported like every spec's, the summary
/// line, the sweep's lock, writing the results.
enum SweepText {
    static func plan(_ path: String) throws -> SweepPlan {
        do throws(SpecError) {
            return try SweepPlanner().plan(path: path)
        } catch {
            throw report(error)
        }
    }

    /// A progress line, flushed at once (the pool runs for hours, often with its output in a file).
    static func say(_ line: String) {
        print(line)
        fflush(nil)  // every output stream: standard output is the one written
    }

    /// The running `lethe` executable, which the jobs run.
    static var binary: String { RunFiles.executable ?? CommandLine.arguments[0] }

    static func summary(_ plan: SweepPlan, pending: [SweepJob]) -> String {
        let finished = plan.members.filter(\.finished).count
        let stagesDone = plan.stages.filter(\.finished).count
        return
            "sweep \(plan.name) \(plan.hash.prefix(16)): \(plan.members.count) member\(plan.members.count == 1 ? "" : "s") (\(finished) finished), \(plan.stages.count) shared stage\(plan.stages.count == 1 ? "" : "s") (\(stagesDone) finished); \(pending.count) job\(pending.count == 1 ? "" : "s") to run; results in \(plan.directory)"
    }

    /// The sweep's lock (`<output>/sweeps/<hash>.lock`): one `lethe sweep` runs or submits a sweep at a time.
    static func lock(_ plan: SweepPlan) throws -> FileLock {
        let path = plan.directory + ".lock"
        do {
            try FileManager.default.createDirectory(
                atPath: URL(fileURLWithPath: path).deletingLastPathComponent().path, withIntermediateDirectories: true)
            if let lock = try FileLock.attempt(path) { return lock }
        } catch {
            throw failure("\(path): cannot take the sweep's lock: \(error)")
        }
        let who = FileLock.holder(of: path).map { "process \($0)" } ?? "another process"
        throw failure(
            "this sweep is being run by \(who) (\(path)); `lethe sweep status` shows its progress")
    }

    /// Writes members.json, table.md, table.csv (and pareto.svg) into `folder`.
    static func collect(_ record: SweepRecord, into folder: String) throws -> [String] {
        do { return try SweepResults(record).write(record, into: folder) } catch { throw failure("\(error)") }
    }
}
