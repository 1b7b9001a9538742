import Foundation
import Testing

/// `lethe sweep` as a user runs it: the local pool end to end, reuse, status, Ctrl-C and resume, the
/// Slurm executor's scripts, and a real one-node Slurm cluster when one answers.
@Suite(.serialized) struct SweepCLITests {
    static let sweep = """
        version: 1
        kind: sweep
        name: tiny
        base: un.yaml
        grid:
          unlearn.alpha: [0.1, 1.0]
          seed: [0, 1]
        """

    static func folder(steps: Int = 3, every: Int = 50, logEvery: Int = 100) throws -> String {
        let folder = CLI.folder()
        try CLI.writeSpecs(in: folder)
        let un = try String(contentsOfFile: folder + "/un.yaml", encoding: .utf8).replacingOccurrences(
            of: "train: {steps: 3, batch_size: 4, forget_batch_size: 4, log_every: 100}",
            with:
                "train: {steps: \(steps), batch_size: 4, forget_batch_size: 4, log_every: \(logEvery), checkpoint_every: \(every)}"
        )
        try un.write(toFile: folder + "/un.yaml", atomically: true, encoding: .utf8)
        try sweep.write(toFile: folder + "/sweep.yaml", atomically: true, encoding: .utf8)
        return folder
    }

    static func sweepFolder(_ folder: String) -> String? {
        ((try? FileManager.default.contentsOfDirectory(atPath: folder + "/runs/sweeps")) ?? [])
            .first { $0.count == 64 }.map { folder + "/runs/sweeps/" + $0 }
    }

    /// One command runs the shared stage and the four members; the table has a finished row each and the
    /// alpha plot; a second call runs nothing; status lists every member finished.
    @Test func aLocalSweepRunsItsMembersOnceAndIsReused() throws {
        let folder = try Self.folder()
        let first = try CLI.run(["sweep", "sweep.yaml", "--jobs", "2"], in: folder)
        #expect(first.code == 0, "\(first.out)\(first.err)")
        #expect(first.out.contains("4 members (0 finished), 1 shared stage (0 finished); 5 jobs to run"))
        #expect(first.out.components(separatedBy: ": finished in").count - 1 == 5)
        let results = try #require(Self.sweepFolder(folder))
        let table = try String(contentsOfFile: results + "/table.md", encoding: .utf8)
        #expect(table.components(separatedBy: "| finished |").count - 1 == 4, "\(table)")
        #expect(table.contains("| unlearn.alpha | seed | D_R PSNR |"))
        #expect(FileManager.default.fileExists(atPath: results + "/pareto.svg"))
        #expect(CLI.runDirectories(folder).count == 5)

        let second = try CLI.run(["sweep", "sweep.yaml"], in: folder)
        #expect(second.code == 0)
        #expect(second.out.contains("4 members (4 finished), 1 shared stage (1 finished); 0 jobs to run"))
        #expect(!second.out.contains("started"))
        let status = try CLI.run(["sweep", "status", "sweep.yaml"], in: folder)
        #expect(status.code == 0)
        #expect(status.out.components(separatedBy: "finished\n").count - 1 == 5, "\(status.out)")

        // Collecting from the results folder alone gives the same table.
        let collected = try CLI.run(["sweep", "collect", results], in: folder)
        #expect(collected.code == 0 && collected.out.hasPrefix(table))
    }

    /// Ctrl-C (SIGINT to the pool) stops the running member, which saves its state; the pool ends by the
    /// signal; the next call resumes the member from its saved step and finishes the sweep.
    @Test func ctrlCStopsThePoolAndTheNextCallResumes() throws {
        let folder = try Self.folder(steps: 400, every: 10, logEvery: 5)
        try "version: 1\nkind: sweep\nbase: un.yaml\n".write(
            toFile: folder + "/sweep.yaml", atomically: true, encoding: .utf8)
        #expect(try CLI.run(["run", "pre.yaml", "--threads", "1"], in: folder).code == 0)
        let running = try CLI.start(["sweep", "sweep.yaml", "--jobs", "1"], in: folder)
        // Wait until the member has trained past its first saved state.
        let deadline = Date().addingTimeInterval(120)
        var log = ""
        while Date() < deadline {
            if let results = Self.sweepFolder(folder) {
                log = (try? String(contentsOfFile: results + "/logs/member-0000.log", encoding: .utf8)) ?? ""
                if log.contains("step 25/400") { break }
            }
            usleep(50_000)
        }
        #expect(log.contains("step 25/400"), "the member never reached step 25: \(log)")
        kill(running.process.processIdentifier, SIGINT)
        let stopped = CLI.finish(running)
        #expect(stopped.signaled && stopped.code == SIGINT, "\(stopped.out)\(stopped.err)")
        #expect(stopped.out.contains("SIGINT received"))
        #expect(stopped.out.contains("member 0 (base un.yaml): stopped after"))
        let status = try CLI.run(["sweep", "status", "sweep.yaml"], in: folder)
        #expect(status.out.contains("interrupted (resumes from step "), "\(status.out)")

        let resumed = try CLI.run(["sweep", "sweep.yaml", "--jobs", "1"], in: folder)
        #expect(resumed.code == 0, "\(resumed.out)\(resumed.err)")
        let results = try #require(Self.sweepFolder(folder))
        let memberLog = try String(contentsOfFile: results + "/logs/member-0000.log", encoding: .utf8)
        #expect(memberLog.contains("resumed from step "), "\(memberLog)")
        #expect(try String(contentsOfFile: results + "/table.md", encoding: .utf8).contains("| finished |"))
    }

    /// A member that fails (its loss diverges) does not stop the others; the sweep exits 2 and its
    /// table says which member failed and where its log is.
    @Test func aFailedMemberIsReportedAndTheOthersFinish() throws {
        let folder = try Self.folder()
        try """
        version: 1
        kind: sweep
        base: un.yaml
        zip: {train.optimizer.lr: [1.0e+30, 1.0e-4], train.optimizer.name: [sgd, adam]}
        """.write(toFile: folder + "/sweep.yaml", atomically: true, encoding: .utf8)
        let r = try CLI.run(["sweep", "sweep.yaml", "--jobs", "1"], in: folder)
        #expect(r.code == 2, "\(r.out)\(r.err)")
        #expect(
            r.out.contains("member 0 (train.optimizer.lr=1e+30 train.optimizer.name=sgd): FAILED (exit code 2)"),
            "\(r.out)")
        #expect(r.err.contains("1 job did not finish: member-0000"))
        let table = try String(contentsOfFile: try #require(Self.sweepFolder(folder)) + "/table.md", encoding: .utf8)
        #expect(table.contains("| failed (exit code 2; logs/member-0000.log) |"), "\(table)")
        #expect(table.contains("| finished |"))
    }

    /// --dry-run with slurm prints the batch scripts and sbatch commands and submits nothing.
    @Test func theSlurmDryRunPrintsScriptsAndSubmitsNothing() throws {
        let folder = try Self.folder()
        let r = try CLI.run(
            ["sweep", "sweep.yaml", "--executor", "slurm", "--dry-run", "--max-parallel", "3", "--partition", "p"],
            in: folder)
        #expect(r.code == 0, "\(r.err)")
        #expect(r.out.contains("#SBATCH --array=0-3%3"))
        #expect(r.out.contains("#SBATCH --partition=p"))
        #expect(r.out.contains("--dependency=afterok:<id of pretrain-"))
        #expect(r.out.contains("--dependency=afterany:<id of members>"))
        #expect(Self.sweepFolder(folder) == nil, "a dry run wrote the sweep's folder")
        let bad = try CLI.run(["sweep", "sweep.yaml", "--executor", "slurm", "--time", "soon"], in: folder)
        #expect(bad.code == 2 && bad.err.contains("--time"))
        let injected = try CLI.run(
            ["sweep", "sweep.yaml", "--executor", "slurm", "--partition", "p\n#SBATCH --x"], in: folder)
        #expect(injected.code == 2 && injected.err.contains("--partition"))
    }

    /// A sweep on a real Slurm cluster (scripts/slurm-test-cluster.sh starts a one-node one; `make test`
    /// does): the stage job, the members' array and the collect job run, and the table has every member.
    @Test(.enabled(if: SlurmCluster.available, SlurmCluster.skipReason))
    func aSweepRunsOnARealSlurmCluster() throws {
        let folder = try Self.folder()
        let submit = try CLI.run(
            ["sweep", "sweep.yaml", "--executor", "slurm", "--cpus-per-task", "1", "--mem", "1G"], in: folder,
            environment: SlurmCluster.environment)
        #expect(submit.code == 0, "\(submit.out)\(submit.err)")
        #expect(submit.out.contains("submitted members.sbatch as Slurm job"))
        let queued = try CLI.run(["sweep", "status", "sweep.yaml"], in: folder, environment: SlurmCluster.environment)
        #expect(queued.code == 0 && queued.out.contains("(members): "), "\(queued.out)")
        let results = try #require(Self.sweepFolder(folder))
        let deadline = Date().addingTimeInterval(600)
        var table = ""
        while Date() < deadline {
            table = (try? String(contentsOfFile: results + "/table.md", encoding: .utf8)) ?? ""
            if table.components(separatedBy: "| finished |").count - 1 == 4 { break }
            sleep(2)
        }
        #expect(table.components(separatedBy: "| finished |").count - 1 == 4, "the collect job's table: \(table)")
        let jobs = try String(contentsOfFile: results + "/slurm/jobs.json", encoding: .utf8)
        #expect(jobs.contains("\"members\"") && jobs.contains("\"collect\""))
        let logs = try FileManager.default.contentsOfDirectory(atPath: results + "/slurm/logs")
        #expect(logs.filter { $0.contains("members") }.count == 4, "\(logs)")
        let ended = try CLI.run(["sweep", "status", "sweep.yaml"], in: folder, environment: SlurmCluster.environment)
        #expect(ended.out.contains("(members): no longer queued (ended)"), "\(ended.out)")
    }
}

/// Whether a Slurm cluster answers here: SLURM_CONF as set, or the test cluster's
/// (scripts/slurm-test-cluster.sh, /tmp/lethe-slurm/slurm.conf).
enum SlurmCluster {
    static let environment: [String: String] = {
        var env = ProcessInfo.processInfo.environment
        if env["SLURM_CONF"] == nil, FileManager.default.fileExists(atPath: "/tmp/lethe-slurm/slurm.conf") {
            env["SLURM_CONF"] = "/tmp/lethe-slurm/slurm.conf"
        }
        return env
    }()

    static let available: Bool = {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["sinfo", "-h", "-o", "%T"]
        p.environment = environment
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        guard (try? p.run()) != nil else { return false }
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        return p.terminationStatus == 0
            && text.split(separator: "\n").contains { ["idle", "mixed", "allocated"].contains($0) }
    }()

    static let skipReason: Comment =
        "no Slurm cluster answers here (sinfo failed: start one with scripts/slurm-test-cluster.sh start, which needs root and the slurm-wlm and munge packages); the Slurm executor's script and dry-run tests still ran"
}
