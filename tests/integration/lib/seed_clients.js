// tests/integration/lib/seed_clients.js — the two browser readers of the seed documents
// (shared/seeds/clients.md), as source text that a test runs in Node (runSeedClient) or
// injects into a Chromium page (SEED_SOURCE, then `seed001(...)` / `seed002(...)`).
//
// The code inside the two functions is the seeds' own, verbatim, except for:
//  - the URL (a parameter) and the request body's placeholders (seed 001 posts `messages: []`
//    and `model: 'gpt-3.5-turbo'`, seed 002 `JSON.stringify(data)`): the test's model and
//    messages instead; seed 002's placeholder header value "此处可以带接口鉴权token" ("the
//    token goes here") is not a valid header value (fetch refuses non-Latin-1 text), so it
//    sends "" as seed 001 does;
//  - seed 002 was printed on one line in its page, which turned its `//` comments into
//    comments over the rest of the line: its original line breaks are restored;
//  - where a seed says "business logic goes here" (001) or appends to the page (002's
//    `$('#mean').append(content)`), the text reaches `record`; `$` is given by the caller;
//  - each function returns a promise that settles when the seed's reader is done (001: its
//    loop ends or throws; 002: its `onclose`), so a test can wait on it. A seed that throws
//    rejects it (001); seed 002 swallows errors in its own `.catch`, so a broken read
//    simply never calls `onclose` — the caller's timeout then tells.
//
// Both read OpenAI's own stream correctly; telex's default stream must read the same way.
export const SEED_SOURCE = String.raw`
async function seed001(url, model, messages, record) {
const response = await fetch(url, {
    method: 'POST',
    headers: {
        'Content-Type': 'application/json',
        'Authorization':''
    },
    body: JSON.stringify({
        model: model,
        messages: messages,
        stream: true
    })
})
const reader = response.body.getReader()
const decoder = new TextDecoder()
let packed
while (!(packed = await reader.read()).done) {
    let result = decoder.decode(packed.value) // uint8array转字符串
    const lines = result.trim().split("\n\n") // 拆分返回的行
    for (let i in lines) {
        let line = lines[i].substring(6) // 去掉开头的 data:
        if (line === '[DONE]') { // 结束
            break
        }
        let data = JSON.parse(line)
        let delta = data['choices'][0]['delta']
        record(delta.content ?? '')

        // 后面就是自己的业务逻辑了...
    }
}
}

function seed002(url, data, $) {
return new Promise((resolveClosed) => {
const fetchEventSource = (url, options) => {
  fetch(url, options).then(resp => {
    if (resp.status === 200) {
      options.onopen && options.onopen()
      return resp.body
    }
  }).then(rb => {
    const reader = rb.getReader()
    const push = () => {
      // done 为数据是否接收完成 boolean 值
      // value 为接收到的数据, Uint8Array 格式
      return reader.read().then(({done, value}) => {
        if (done) {
          options.onclose && options.onclose()
          return
        }
        options.onmessage && options.onmessage(new TextDecoder().decode(value))
        return push()
      });
    }
    // 开始读取流信息
    return push()
  }).catch((e) => {
    options.error && options.error(e)
  })
}

fetchEventSource(url, {
  method: 'POST',
  body: JSON.stringify(data),
  headers: {
    "Content-Type": "application/json",
    "Authorization": ""
  },
  onopen: () => {
    console.log('连接sse成功')
  },
  onclose: () => {
    console.log('sse连接关闭')
    resolveClosed()
  },
  onmessage: (delta) => {
    let prefix = 'data: '
    if (!delta.startsWith(prefix)) {
      return;
    }
    let delta_array = delta.split(prefix);
    delta_array.forEach(function(element) {
      element = element.replace(/\n$/, '')
      if (element === '[DONE]\n') {
        return;
      }
      if (element != '') {
        // 可能有多个回答
        let choices = JSON.parse(element).choices;
        let content = choices[0].delta.content;
        console.log(content);
        $('#mean').append(content);
      }
    });
  }
})
});
}
`;

// Runs one seed in this Node process against url and returns the text it collected.
// which: '001' or '002'; body: {model, messages}. Rejects when seed 001 throws; seed 002
// rejects after timeoutMs without its onclose (its errors are swallowed by its own catch).
export async function runSeedClient(which, url, body, { timeoutMs = 15000 } = {}) {
  const make = new Function('console', `${SEED_SOURCE}; return { seed001, seed002 };`);
  const quiet = { log() {} };
  const { seed001, seed002 } = make(quiet);
  const parts = [];
  if (which === '001') {
    await seed001(url, body.model, body.messages, (t) => parts.push(t));
    return parts.join('');
  }
  const $ = () => ({ append: (t) => parts.push(t ?? '') });
  let timer;
  try {
    await Promise.race([
      seed002(url, { ...body, stream: true }, $),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`seed 002 never closed (${parts.length} parts)`)), timeoutMs);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
  return parts.join('');
}
