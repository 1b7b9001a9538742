import Foundation
import LetheFiles
import LetheRuns
import LetheSpec

/// The Slurm executor: one batch job per unfinished shared stage (each after the stages it needs), one
/// job array with a task per unfinished member (`--array=0-N%M`, after every stage job), and a collect
/// job after the array (`afterany`, so a table is written even when some members fail). Every job is
/// `--requeue`: preemption sends SIGTERM, `lethe` saves its training state, and the requeued job resumes
/// it. The scripts name the exact `lethe` binary and check its SHA-256 before they run it.
public struct SlurmExecutor {
    public var binary: String
    public var binaryDigest: String
    public var settings: SlurmSettings
    /// The sweep's results folder; the scripts, job ids and logs go in its `slurm/`.
    public var sweepFolder: String
    public var sbatch: String

    public init(binary: String, settings: SlurmSettings, sweepFolder: String, sbatch: String = "sbatch") throws {
        self.binary = binary
        do { binaryDigest = try Digest.sha256(file: binary) } catch {
            throw RunError("\(binary): cannot read the lethe binary: \(error)")
        }
        self.settings = settings
        self.sweepFolder = sweepFolder
        self.sbatch = sbatch
    }

    public var folder: String { sweepFolder + "/slurm" }

    /// A batch script and the sbatch options that depend on other jobs' ids.
    public struct Script: Sendable {
        public var name: String
        public var text: String
        /// Job names whose success (`afterok`) or end (`afterany`) this job waits for.
        public var after: [String]
        public var afterAny: Bool
        /// The jobs the script runs (one, or the array's tasks in order).
        public var jobs: [SweepJob]
    }

    /// The scripts for `jobs` (the sweep's unfinished stages and members), in submission order.
    public func scripts(_ plan: SweepPlan, jobs: [SweepJob]) -> [Script] {
        var out: [Script] = []
        let stageJobs = jobs.filter { if case .stage = $0.role { return true } else { return false } }
        let memberJobs = jobs.filter { if case .member = $0.role { return true } else { return false } }
        for job in stageJobs {
            out.append(
                Script(
                    name: job.name + ".sbatch",
                    text: script(
                        plan, name: "\(plan.name)-\(job.name)", array: nil,
                        body: [command(job.arguments, threads: true)]),
                    after: job.needs, afterAny: false, jobs: [job]))
        }
        if !memberJobs.isEmpty {
            let cases = memberJobs.enumerated().map { i, job in
                "  \(i)) \(command(job.arguments, threads: true)) ;;  # \(job.label)"
            }
            let body =
                ["case \"${SLURM_ARRAY_TASK_ID:?not an array task}\" in"] + cases
                + ["  *) echo \"lethe sweep: no member for array task ${SLURM_ARRAY_TASK_ID}\" >&2; exit 2 ;;", "esac"]
            let limit = settings.maxParallel.map { "%\($0)" } ?? ""
            out.append(
                Script(
                    name: "members.sbatch",
                    text: script(
                        plan, name: "\(plan.name)-members", array: "0-\(memberJobs.count - 1)\(limit)", body: body),
                    after: stageJobs.map(\.name), afterAny: false, jobs: memberJobs))
        }
        var collect = settings
        (collect.cpusPerTask, collect.mem, collect.time) = (1, "1G", "0:15:00")
        out.append(
            Script(
                name: "collect.sbatch",
                text: script(
                    plan, name: "\(plan.name)-collect", array: nil,
                    body: [command(["sweep", "collect", sweepFolder], threads: false)], resources: collect),
                after: memberJobs.isEmpty ? stageJobs.map(\.name) : ["members"], afterAny: true, jobs: []))
        return out
    }

    func command(_ arguments: [String], threads: Bool) -> String {
        "exec \"$LETHE\" " + arguments.map(Self.quote).joined(separator: " ")
            + (threads ? " --threads \"${SLURM_CPUS_PER_TASK:-\(settings.cpusPerTask)}\"" : "")
    }

    func script(_ plan: SweepPlan, name: String, array: String?, body: [String], resources: SlurmSettings? = nil)
        -> String
    {
        let r = resources ?? settings
        var lines = ["#!/bin/bash"]
        var options = [
            "--job-name=lethe-\(name)", "--time=\(r.time)", "--cpus-per-task=\(r.cpusPerTask)", "--mem=\(r.mem)",
            "--requeue", "--open-mode=append", "--chdir=\(Self.quote(FileManager.default.currentDirectoryPath))",
            "--output=" + Self.quote(folder + "/logs/" + (array == nil ? "%x-%j.log" : "%x-%A_%a.log")),
        ]
        if let array { options.append("--array=\(array)") }
        if let p = r.partition { options.append("--partition=\(p)") }
        if let a = r.account { options.append("--account=\(a)") }
        if let q = r.qos { options.append("--qos=\(q)") }
        lines += options.map { "#SBATCH " + $0 }
        lines += [
            "# Written by lethe \(LetheVersion.current) for sweep \(plan.hash) (\(plan.path)).",
            "# Preemption sends SIGTERM: lethe saves its training state, and the requeued job resumes from it.",
            "set -euo pipefail",
            "LETHE=\(Self.quote(binary))",
            "LETHE_SHA256=\(binaryDigest)",
            "if [ \"$(sha256sum \"$LETHE\" | cut -d' ' -f1)\" != \"$LETHE_SHA256\" ]; then",
            "  echo \"lethe sweep: $LETHE is not the lethe \(LetheVersion.current) binary this job was written for (SHA-256 $LETHE_SHA256); plan and submit the sweep again\" >&2",
            "  exit 2",
            "fi",
        ]
        return (lines + body).joined(separator: "\n") + "\n"
    }

    /// `s` as one shell word: as it is when it is plain, else in single quotes.
    public static func quote(_ s: String) -> String {
        s.allSatisfy({ $0.isLetter || $0.isNumber || "-_./=:,@%+".contains($0) }) && !s.isEmpty
            ? s : "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }

    /// The sbatch command line of `script` once the ids of the jobs it waits for are known.
    public func sbatchArguments(_ script: Script, ids: [String: String]) -> [String] {
        var args = ["--parsable"]
        let after = script.after.map { ids[$0] ?? "<id of \($0)>" }
        if !after.isEmpty {
            args.append("--dependency=\(script.afterAny ? "afterany" : "afterok"):" + after.joined(separator: ":"))
            args.append("--kill-on-invalid-dep=yes")
        }
        return args + [folder + "/" + script.name]
    }

    /// Writes the scripts and submits them in order; returns each script's job id (by job name:
    /// the stages' names, `members`, `collect`). The ids are also written to `slurm/jobs.json`.
    public func submit(_ scripts: [Script], log: (String) -> Void) throws -> [String: String] {
        let fm = FileManager.default
        do {
            try fm.createDirectory(atPath: folder + "/logs", withIntermediateDirectories: true)
            for s in scripts {
                try Data(s.text.utf8).write(to: URL(fileURLWithPath: folder + "/" + s.name), options: .atomic)
            }
        } catch {
            throw RunError("\(folder): cannot write the batch scripts: \(FileSystem.reason(error))")
        }
        var ids: [String: String] = [:]
        for s in scripts {
            let args = sbatchArguments(s, ids: ids)
            let (code, out, err) = Self.shell([sbatch] + args)
            guard code == 0, let id = out.split(separator: "\n").first?.split(separator: ";").first.map(String.init),
                !id.isEmpty
            else {
                throw RunError(
                    "sbatch \(args.joined(separator: " ")) failed (exit \(code)): \(err.trimmingCharacters(in: .whitespacesAndNewlines))"
                )
            }
            let key = s.name.replacingOccurrences(of: ".sbatch", with: "")
            ids[key] = id
            log(
                "sweep: submitted \(s.name) as Slurm job \(id)"
                    + (s.jobs.count > 1 ? " (\(s.jobs.count) array tasks)" : ""))
        }
        let record = JSONValue.object(JSONObject(ids.sorted { $0.key < $1.key }.map { ($0.key, .string($0.value)) }))
        do {
            try Data((JSONText.pretty(record) + "\n").utf8).write(
                to: URL(fileURLWithPath: folder + "/jobs.json"), options: .atomic)
        } catch {
            throw RunError("\(folder)/jobs.json: cannot write: \(FileSystem.reason(error))")
        }
        return ids
    }

    /// The jobs a sweep submitted (`slurm/jobs.json` in `sweepFolder`: job name -> id), if any.
    public static func submittedJobs(sweepFolder: String) -> [(name: String, id: String)] {
        guard let json = (try? RunStore.json(sweepFolder + "/slurm", "jobs.json")) ?? nil, let object = json.objectValue
        else { return [] }
        return object.keys.sorted().compactMap { key in object[key]?.stringValue.map { (key, $0) } }
    }

    /// What Slurm says of `jobs` now: per job name, its tasks counted by state (PENDING, RUNNING, ...),
    /// or nil when squeue cannot be asked. A job Slurm no longer lists has ended.
    public static func queueStates(_ jobs: [(name: String, id: String)]) -> [String: [String: Int]]? {
        guard !jobs.isEmpty else { return [:] }
        let (code, out, _) = shell(["squeue", "-h", "-r", "-o", "%i %T", "-j", jobs.map(\.id).joined(separator: ",")])
        guard code == 0 else { return nil }
        var states: [String: [String: Int]] = [:]
        for line in out.split(separator: "\n") {
            let fields = line.split(separator: " ")
            guard fields.count == 2 else { continue }
            let id = fields[0].split(separator: "_").first.map(String.init) ?? ""
            guard let job = jobs.first(where: { $0.id == id }) else { continue }
            states[job.name, default: [:]][String(fields[1]), default: 0] += 1
        }
        return states
    }

    /// Runs a program (found on PATH), returning its exit code, output and error text.
    public static func shell(_ arguments: [String]) -> (Int32, String, String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = arguments
        let out = Pipe()
        let err = Pipe()
        p.standardOutput = out
        p.standardError = err
        p.standardInput = FileHandle.nullDevice
        do { try p.run() } catch { return (127, "", "\(error)") }
        let o = out.fileHandleForReading.readDataToEndOfFile()
        let e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
    }
}
