// What a mini-program (or H5 page) does to report a problem with a photo, written against the generated
// types: `./check.sh` type-checks it in CI, so a change of the API that would break this flow fails the build.
//
//   1. sign in with the code of wx.login() (the embedded mode's stand-in accepts any code),
//   2. read GET /issues/config (categories, upload limits; cache it, revalidate with its ETag),
//   3. upload the photo (multipart/form-data, field "file" — what wx.uploadFile sends),
//   4. report the issue with the photo's id (an Idempotency-Key makes a retry safe),
//   5. read the issue's status.
import { createMinshengClient, ok, type IdentitySchemas, type IssuesSchemas } from "./src/index.js";

export async function reportWithPhoto(origin: string, wxLoginCode: string, photo: Blob): Promise<string> {
  let accessToken: string | undefined;
  const api = createMinshengClient({ origin, accessToken: () => accessToken, language: "zh-CN" });

  const login: IdentitySchemas["WechatLogin"] = { code: wxLoginCode };
  const session = ok(await api.identity.POST("/wechat/login", { body: login }));
  accessToken = session.access_token;
  const refreshToken: string = session.refresh_token; // keep it to renew the 15-minute access token
  console.log(`signed in as ${session.account.id}; refresh in ${session.expires_in} s`, refreshToken.length);

  const config = ok(await api.issues.GET("/config"));
  const category = config.categories?.find((c) => !c.urgent) ?? config.categories?.[0];
  const upload = config.uploads.find((u) => u.path === "/issues/photos");
  if (!category || !upload) throw new Error("the issues service offers no category or no photo upload");
  if (photo.size > upload.max_bytes) throw new Error(`photo over ${upload.max_bytes} bytes`);

  const uploaded = ok(
    await api.issues.POST("/photos", {
      body: { file: photo },
      bodySerializer(body) {
        const form = new FormData();
        form.append(upload.field, body.file, "photo.jpg");
        return form;
      },
    }),
  );

  const report: IssuesSchemas["IssueCreate"] = {
    category: category.code,
    description: "路灯不亮，晚上很黑",
    latitude: 40.0098, // as wx.getLocation({ type: "gcj02" }) or the map gives it
    longitude: 112.6983,
    coord_system: "gcj02",
    photo_ids: [uploaded.id],
  };
  const receipt = ok(
    await api.issues.POST("/issues", {
      params: { header: { "Idempotency-Key": crypto.randomUUID() } },
      body: report,
    }),
  );
  console.log(receipt.attached ? "joined an open report of the same problem" : "reported", receipt.id);

  const issue = ok(await api.issues.GET("/issues/{issue_id}", { params: { path: { issue_id: receipt.id } } }));
  const last = issue.timeline[issue.timeline.length - 1];
  console.log(`status ${issue.status} since ${last?.at ?? issue.created_at}`);
  return issue.status;
}
